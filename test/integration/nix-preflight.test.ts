// The origin brings the Nix settings it needs (origin/nix/settings.ts), so
// it builds on a machine with no nix.conf at all, and it names, in one line,
// a Nix that cannot build: at start-up and in /readyz.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { checkNixCanBuild } from '../../origin/nix/preflight.ts';
import { startOrigin } from '../support/origin.ts';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';

/** An empty configuration directory: Nix then sees no /etc/nix/nix.conf and no user nix.conf, as on a fresh machine. */
async function noNixConf(defer: (undo: () => unknown) => void): Promise<Record<string, string>> {
  const dir = await mkdtemp(join(tmpdir(), 'no-nix-conf-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  return { NIX_CONF_DIR: dir, NIX_USER_CONF_FILES: join(dir, 'nix.conf') };
}

test('with no nix.conf anywhere, Nix run as root would refuse to build, and the origin builds all the same', async (t) => {
  const defer = deferrer(t);
  const fresh = await noNixConf(defer);
  // The fact the settings exist for: Nix's own default for root names a group Debian never creates.
  const bare = await execa('nix', ['--extra-experimental-features', 'nix-command', 'show-config', '--json'], { env: { ...fresh, NIX_CONFIG: '' } });
  assert.equal((JSON.parse(bare.stdout) as Record<string, { value: unknown }>)['build-users-group']!.value, 'nixbld');

  assert.deepEqual((await checkNixCanBuild({ env: { ...process.env, ...fresh, NIX_CONFIG: 'substituters =' } })).ok, true);
  const origin = await startOrigin({ env: fresh });
  defer(() => origin.stop());
  const res = await fetch(`${origin.url}/v2/hello/manifests/latest`);
  assert.equal(res.status, 200, await res.clone().text());
  const ready = await fetch(`${origin.url}/readyz`);
  assert.equal(ready.status, 200, await ready.clone().text());
});

test('a build-users-group that names no group is reported in one line naming the setting, at start-up and by /readyz', async (t) => {
  assert.equal(process.getuid?.(), 0, 'Nix only uses build users as root, and the suite runs as root (README)');
  const defer = deferrer(t);
  const fresh = await noNixConf(defer);
  const env = { ...fresh, NIX_CONFIG: 'substituters =\nbuild-users-group = nixery-edge-no-such-group' };
  const direct = await checkNixCanBuild({ env: { ...process.env, ...env } });
  assert.equal(direct.ok, false);
  assert.match(!direct.ok ? direct.problem : '', /build-users-group is 'nixery-edge-no-such-group', a group that does not exist.*build-users-group =/);

  const origin = await startOrigin({ env });
  defer(() => origin.stop());
  await eventually(() => origin.logs.some((l) => l.msg === 'nix cannot build'), 'the start-up line');
  const line = origin.logs.find((l) => l.msg === 'nix cannot build')!;
  assert.match(String(line.problem), /build-users-group/);
  const ready = await fetch(`${origin.url}/readyz`);
  assert.equal(ready.status, 503);
  const body = (await ready.json()) as { checks: { nix: { ok: boolean; error?: string } } };
  assert.equal(body.checks.nix.ok, false);
  assert.match(body.checks.nix.error ?? '', /build-users-group/);
});

test('nix-build missing from PATH is named', async () => {
  const result = await checkNixCanBuild({ env: { PATH: '/nonexistent' } });
  assert.equal(result.ok, false);
  assert.match(!result.ok ? result.problem : '', /^nix-build is not on PATH \(\/nonexistent\)/);
});

test('a store on a read-only file system is named', async (t) => {
  const defer = deferrer(t);
  // A real read-only mount (root can write through permission bits, not through a read-only mount).
  const dir = await mkdtemp(join(tmpdir(), 'ro-store-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  const nix = join(dir, 'nix');
  await mkdir(nix);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', nix]);
  defer(() => execa('umount', [nix]));
  const store = join(nix, 'store');
  await mkdir(store);
  await mkdir(join(nix, 'var/nix/db'), { recursive: true });
  await execa('mount', ['-o', 'remount,ro', nix]);
  const result = await checkNixCanBuild({ env: { ...process.env, NIX_STORE_DIR: store, NIX_STATE_DIR: join(dir, 'nix/var/nix') } });
  assert.equal(result.ok, false);
  assert.match(!result.ok ? result.problem : '', new RegExp(`the Nix store cannot be written: ${store} is on a read-only file system`));
});
