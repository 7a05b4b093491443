// A FAKE nix-build for tests of what the origin does when Nix misbehaves: a
// shell script put first on the origin's PATH. Until it is armed it runs the
// real nix-build, because the origin's start-up check (nix/preflight.ts)
// runs one; once armed, it runs the test's own shell body instead.
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

export interface FakeNixBuild {
  /** PATH for the origin, with the fake first. */
  path: string;
  /** From now on, nix-build runs the fake's body. */
  arm(): Promise<void>;
}

/** Writes the fake into `dir` (the test's own temporary directory); `body` is shell, run as the armed nix-build. */
export async function fakeNixBuild(dir: string, body: string): Promise<FakeNixBuild> {
  const armed = join(dir, 'armed');
  const real = (await execa('sh', ['-c', 'command -v nix-build'])).stdout.trim();
  await writeFile(join(dir, 'nix-build'), `#!/bin/sh\n[ -e '${armed}' ] || exec '${real}' "$@"\n${body}`);
  await chmod(join(dir, 'nix-build'), 0o755);
  return {
    path: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    arm: () => writeFile(armed, ''),
  };
}
