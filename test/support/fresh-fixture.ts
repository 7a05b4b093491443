// A copy of the bundled package set whose every derivation is new to the
// store (a nonce among each derivation's attributes), for tests and benchmarks
// that need packages nobody has built yet on this machine, whatever ran before.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURE_PKGS } from './origin.ts';

export interface FreshFixture {
  path: string;
  remove(): Promise<void>;
}

const MARKER = 'inherit name system outputs;';

export async function freshFixture(): Promise<FreshFixture> {
  const path = await mkdtemp(join(tmpdir(), 'fresh-fixture-'));
  await cp(FIXTURE_PKGS, path, { recursive: true });
  const stdenv = join(path, 'stdenv.nix');
  const source = await readFile(stdenv, 'utf8');
  if (!source.includes(MARKER)) {
    await rm(path, { recursive: true, force: true });
    throw new Error(`bundled-pkgs/stdenv.nix no longer has "${MARKER}", where freshFixture() puts its nonce`);
  }
  const nonce = `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await writeFile(stdenv, source.replace(MARKER, `${MARKER} fixtureNonce = "${nonce}";`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}
