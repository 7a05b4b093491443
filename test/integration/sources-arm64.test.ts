// arm64/ names build for aarch64-linux. The fixture's `greeting` needs no
// build on any system, so its arm64 image works on this machine and shows
// the config's architecture; `compiled` needs a real aarch64-linux build,
// which a machine without such a builder must refuse clearly and quickly,
// and which an origin whose Nix has extra-platforms = aarch64-linux builds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { execa } from 'execa';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { SOURCE_FIXTURE, digestOf, imageConfig, packageSet, pullManifest, tempDir } from '../support/sources.ts';
import { ARM64_NIX_CONFIG } from '../support/arm64.ts';

let origin: RunningOrigin;

/** Whether this machine's Nix can build for a system: natively, as an extra platform, or on a configured remote builder. */
async function canBuild(system: string): Promise<boolean> {
  const { stdout } = await execa('nix', ['--extra-experimental-features', 'nix-command', 'show-config', '--json']);
  const config = JSON.parse(stdout) as Record<string, { value: unknown }>;
  if (config.system?.value === system) return true;
  if ((config['extra-platforms']?.value as string[] | undefined)?.includes(system)) return true;
  let builders = String(config.builders?.value ?? '');
  if (builders.startsWith('@')) builders = await readFile(builders.slice(1), 'utf8').catch(() => '');
  // Each builder is "URI SYSTEMS ...", SYSTEMS a comma-separated list.
  return builders.split(/[\n;]/).some((line) => line.trim().split(/\s+/)[1]?.split(',').includes(system));
}

const aarch64 = await canBuild('aarch64-linux');

before(async () => {
  origin = await startOrigin({ env: { NIXERY_PKGS_PATH: SOURCE_FIXTURE } });
});

after(async () => {
  await origin?.stop();
});

test('arm64/greeting is an arm64 image and greeting an amd64 one', async () => {
  assert.equal((await imageConfig(origin, 'arm64/greeting', 'latest')).architecture, 'arm64');
  assert.equal((await imageConfig(origin, 'greeting', 'latest')).architecture, 'amd64');
  assert.equal((await imageConfig(origin, 'amd64/greeting', 'latest')).architecture, 'amd64');
  assert.notEqual(await digestOf(origin, 'arm64/greeting', 'latest'), await digestOf(origin, 'greeting', 'latest'));
});

test('without an aarch64-linux builder, an arm64 image that needs a build answers MANIFEST_UNKNOWN saying so, and the origin keeps serving', { skip: aarch64 && 'this machine can build for aarch64-linux' }, async () => {
  const result = await pullManifest(origin, 'arm64/compiled', 'latest');
  assert.equal(result.status, 404);
  assert.equal(result.error?.code, 'MANIFEST_UNKNOWN');
  assert.match(result.error!.message, /cannot build this image: building compiled requires system aarch64-linux, and this origin runs on \S+ with no aarch64-linux builder/);
  assert.equal((result.error!.detail as { system: string }).system, 'aarch64-linux');
  assert.equal((await pullManifest(origin, 'compiled', 'latest')).status, 200);
  assert.equal((await pullManifest(origin, 'arm64/greeting', 'latest')).status, 200);
});

test('with an aarch64-linux builder, an arm64 image that needs a build is built for arm64', { timeout: 120_000 }, async () => {
  // The origin's own Nix setting makes this x86_64 machine a builder for
  // aarch64-linux; a version of the set nobody built keeps the test honest.
  const dir = await packageSet(await tempDir('arm64-built-'), `Built for arm64 at ${Date.now()}.`);
  const builder = await startOrigin({ env: { NIXERY_PKGS_PATH: dir, NIX_CONFIG: ARM64_NIX_CONFIG } });
  try {
    assert.equal((await imageConfig(builder, 'arm64/compiled', 'latest')).architecture, 'arm64');
    assert.equal((await imageConfig(builder, 'compiled', 'latest')).architecture, 'amd64');
  } finally {
    await builder.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
