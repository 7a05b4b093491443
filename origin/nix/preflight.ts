// Can this origin's Nix build at all? Asked at start-up and by /readyz, so a
// Nix that cannot build is named in one line (with the setting to change)
// before the first pull fails on it. Three things stop every build on a
// machine that looks fine otherwise: nix-build missing from PATH, a
// build-users-group that names no group (Nix's default for root, on a
// machine where nothing created `nixbld`), and a store Nix cannot write.
import { execa, type ExecaError } from 'execa';
import { access, constants, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { originNixConfig } from './settings.ts';

export type NixPreflight = { ok: true; version: string } | { ok: false; problem: string };

export interface PreflightOptions {
  /** The environment Nix runs in (PATH, NIX_CONFIG, NIX_REMOTE, NIX_STORE_DIR…); the process's own by default. */
  env?: Readonly<Record<string, string | undefined>>;
  timeoutSeconds?: number;
}

interface NixSetting {
  value: unknown;
}

export async function checkNixCanBuild(options: PreflightOptions = {}): Promise<NixPreflight> {
  const given = options.env ?? process.env;
  const env: Record<string, string | undefined> = { ...given, NIX_CONFIG: originNixConfig(given.NIX_CONFIG) };
  const timeout = (options.timeoutSeconds ?? 10) * 1000;
  const run = (command: string, args: string[]) => execa(command, args, { env, extendEnv: false, timeout, reject: true });

  let version: string;
  try {
    version = (await run('nix-build', ['--version'])).stdout.trim();
  } catch (err) {
    if ((err as ExecaError).code === 'ENOENT') return { ok: false, problem: `nix-build is not on PATH (${env.PATH ?? 'PATH unset'}): install Nix or put its bin directory on PATH` };
    return { ok: false, problem: `nix-build --version failed: ${oneLine(err)}` };
  }

  let settings: Record<string, NixSetting>;
  try {
    settings = JSON.parse((await run('nix', ['--extra-experimental-features', 'nix-command', 'show-config', '--json'])).stdout) as Record<string, NixSetting>;
  } catch (err) {
    return { ok: false, problem: `Nix cannot read its configuration (NIX_CONFIG, nix.conf): ${oneLine(err)}` };
  }

  const group = String(settings['build-users-group']?.value ?? '');
  if (group !== '' && process.getuid?.() === 0 && !usesDaemon(env, settings) && !(await groupExists(group, env))) {
    return {
      ok: false,
      problem: `Nix's build-users-group is '${group}', a group that does not exist, so Nix refuses to build as root: set "build-users-group =" in NIX_CONFIG (the origin runs Nix single-user) or create the group and its build users`,
    };
  }

  if (!usesDaemon(env, settings)) {
    const storeDir = env.NIX_STORE_DIR ?? '/nix/store';
    const stateDir = env.NIX_STATE_DIR ?? '/nix/var/nix';
    for (const dir of [storeDir, join(stateDir, 'db')]) {
      const problem = await unwritable(dir);
      if (problem) return { ok: false, problem: `the Nix store cannot be written: ${problem} (mount the store read-write, or set NIX_REMOTE=daemon to build through a Nix daemon)` };
    }
  }
  return { ok: true, version };
}

/** Through a daemon, the store and the build users are the daemon's business, not this process's. */
function usesDaemon(env: Readonly<Record<string, string | undefined>>, settings: Record<string, NixSetting>): boolean {
  const store = env.NIX_REMOTE || String(settings.store?.value ?? 'auto');
  return store === 'daemon' || store.startsWith('unix://') || store.startsWith('ssh');
}

async function groupExists(group: string, env: Readonly<Record<string, string | undefined>>): Promise<boolean> {
  // getent asks NSS, as Nix does: a group from LDAP counts as well as one in /etc/group.
  const result = await execa('getent', ['group', group], { env: { PATH: env.PATH ?? '/usr/bin:/bin' }, reject: false, timeout: 5000 });
  if (result.exitCode === 0) return true;
  if ((result as { code?: string }).code === 'ENOENT') return true; // no getent: cannot tell, let Nix say so
  return false;
}

/** Why a directory cannot be written, or null; a missing one counts as writable if its parent is (Nix creates it). */
async function unwritable(dir: string): Promise<string | null> {
  try {
    await stat(dir);
  } catch {
    const parent = dirname(dir);
    return parent === dir ? `${dir} does not exist` : unwritable(parent);
  }
  try {
    await access(dir, constants.W_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EROFS' ? `${dir} is on a read-only file system` : `${dir} is not writable by uid ${process.getuid?.() ?? '?'} (${code})`;
  }
}

function oneLine(err: unknown): string {
  const e = err as ExecaError;
  const text = (typeof e.stderr === 'string' && e.stderr.trim()) || (err as Error).message;
  return text.split('\n').map((line) => line.trim()).filter(Boolean).pop() ?? 'unknown error';
}
