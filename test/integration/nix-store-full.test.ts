// A full Nix store and a full TMPDIR, each a small tmpfs mounted inside the
// origin's own mount namespace (so the store other tests share is never
// filled): the build that does not fit gets 503 UNAVAILABLE naming the
// cause, with Retry-After; what the origin has keeps being served, byte for
// byte; and nothing of the failed image is left in storage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { startPrivateNixOrigin, type PrivateNixOrigin } from '../support/private-nix.ts';
import { pullVerified } from '../support/verify-image.ts';
import { deferrer } from '../support/cleanup.ts';
import { listFiles, SLOW_PKGS } from '../support/ops.ts';

async function refusal(origin: PrivateNixOrigin, name: string): Promise<{ status: number; retryAfter: string | null; code: string; message: string }> {
  const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`);
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  return { status: res.status, retryAfter: res.headers.get('retry-after'), code: body.errors[0]!.code, message: body.errors[0]!.message };
}

/** Every stored blob and manifest hashes to its key, no staged write is left, and nothing else was added. */
async function storageIsWhole(origin: PrivateNixOrigin, before: string[]): Promise<void> {
  const files = await listFiles(origin.storagePath);
  assert.deepEqual(files.filter((f) => f.startsWith('.tmp/')), [], 'no staged write is left');
  for (const file of files.filter((f) => /^(blobs|manifests)\/sha256\//.test(f))) {
    const hex = createHash('sha256').update(await readFile(join(origin.storagePath, file))).digest('hex');
    assert.equal(hex, file.split('/').at(-1), `${file} is whole`);
  }
  // The failed image added no record, manifest or blob (health/ is the readiness check's own object).
  assert.deepEqual(files.filter((f) => !before.includes(f) && !f.startsWith('health/') && !f.startsWith('popularity/')), []);
}

test('a Nix store too small for an image answers 503 naming the full store, keeps serving the images it has, and leaves nothing partial in storage', { timeout: 180_000 }, async (t) => {
  const defer = deferrer(t);
  // The bundled hello image's closure and build inputs fit in 24 MiB; bigpackage's 36 MiB do not.
  const origin = await startPrivateNixOrigin({ storeSize: '24m' });
  defer(() => origin.cleanup());
  const hello = await pullVerified(origin.url, 'hello');
  const before = await listFiles(origin.storagePath);

  const full = await refusal(origin, 'bigpackage');
  assert.equal(full.status, 503, full.message);
  assert.equal(full.retryAfter, '60');
  assert.equal(full.code, 'UNAVAILABLE');
  assert.match(full.message, /^the Nix store or its build directory \(TMPDIR\) is full: No space left on device/);

  const again = await pullVerified(origin.url, 'hello');
  assert.deepEqual(again.manifest, hello.manifest, 'the image it had is served as before');
  await storageIsWhole(origin, before);
  assert.equal((await fetch(`${origin.url}/v2/`)).status, 200);
});

test('a full TMPDIR answers 503 naming it, keeps serving, leaves nothing partial, and the same image builds once space is back', { timeout: 180_000 }, async (t) => {
  const defer = deferrer(t);
  // `scratch` writes 2 MiB into its build directory, which Nix makes in TMPDIR: a 4 MiB tmpfs, filled by the test.
  const origin = await startPrivateNixOrigin({
    tmpSize: '4m',
    env: { NIXERY_PKGS_PATH: SLOW_PKGS, SLOW_PKGS_BIG_MIB: '2', SLOW_PKGS_SALT: String(Date.now()) },
  });
  defer(() => origin.cleanup());
  const hello = await pullVerified(origin.url, 'hello');
  const before = await listFiles(origin.storagePath);
  const tmp = `/proc/${origin.process.pid}/root${origin.tmp}`;
  await writeFile(join(tmp, 'filler'), new Uint8Array(3 * 1024 * 1024));

  const full = await refusal(origin, 'scratch');
  assert.equal(full.status, 503, full.message);
  assert.equal(full.retryAfter, '60');
  assert.equal(full.code, 'UNAVAILABLE');
  assert.match(full.message, /^the Nix store or its build directory \(TMPDIR\) is full: lack of free disk space/);
  assert.deepEqual((await pullVerified(origin.url, 'hello')).manifest, hello.manifest, 'the image it had is served as before');
  await storageIsWhole(origin, before);
  assert.deepEqual((await readdir(tmp)).filter((n) => n.startsWith('nix-build-')), [], 'Nix removed the build directory');

  // A full disk is not remembered as the image's failure: with space back, the same name builds.
  await rm(join(tmp, 'filler'));
  const built = await pullVerified(origin.url, 'scratch');
  assert.ok(built.manifest.layers.length > 0);
});
