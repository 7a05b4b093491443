// A lost layer blob whose store paths the origin's garbage collection took
// already: blob recovery fetches them again from the binary cache (here a
// file:// cache made from the shared store, which holds the same paths:
// the fixture set builds reproducibly) and rebuilds the blob with the same
// digest; once no cache has them, the blob is BLOB_UNKNOWN, as before. The
// origin has a store of its own (a private mount namespace), collected
// every second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { NIX_SYSTEM, parseImageName } from '../../shared/names.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { buildDerivations, resolvePackages } from '../../origin/nix/nix.ts';
import { nixEnvironment } from '../../origin/nix/settings.ts';
import { FIXTURE_PKGS, OFFLINE_NIX_CONFIG } from '../support/origin.ts';
import { startPrivateNixOrigin } from '../support/private-nix.ts';
import { layerRecordOf, pullVerified } from '../support/verify-image.ts';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';

test('a lost blob whose store paths were collected is rebuilt from paths fetched again from the binary cache, with the same digest; without the cache it is BLOB_UNKNOWN', { timeout: 180_000 }, async (t) => {
  const defer = deferrer(t);
  // The image's closure, built in the shared store (adding only) and copied to a file:// binary cache.
  const env = nixEnvironment({ NIX_CONFIG: OFFLINE_NIX_CONFIG });
  const options = { timeoutSeconds: 120, env };
  const resolution = await resolvePackages({ type: 'path', path: FIXTURE_PKGS }, NIX_SYSTEM.amd64, parseImageName('hello').packages, options);
  await buildDerivations([...new Set(resolution.packages.flatMap((p) => p.outputs.map((o) => o.drv)))], options);
  const outputs = resolution.packages.flatMap((p) => p.outputs.map((o) => o.out));
  const cache = await mkdtemp(join(tmpdir(), 'nixery-binary-cache-'));
  defer(() => rm(cache, { recursive: true, force: true }));
  await execa('nix', ['--extra-experimental-features', 'nix-command', 'copy', '--to', `file://${cache}`, ...outputs], { env: { ...process.env, ...env } });

  const origin = await startPrivateNixOrigin({
    env: { NIX_GC_INTERVAL_SECONDS: '1', NIX_CONFIG: `${OFFLINE_NIX_CONFIG.replace('=', `= file://${cache}`)}\nrequire-sigs = false` },
  });
  defer(() => origin.cleanup());
  const image = await pullVerified(origin.url, 'hello');

  // Every layer's store paths are collected once the build released them.
  const records = await Promise.all(image.manifest.layers.map((l) => layerRecordOf(origin.storagePath, l.digest)));
  const paths = records.flatMap((r) => (r.recipe!.kind === 'store-paths' ? r.recipe!.paths : r.recipe!.outputs));
  await eventually(() => paths.every((p) => !existsSync(`${origin.nixDir}/store/${p.slice('/nix/store/'.length)}`)), 'the image\'s store paths to be collected', 20_000);

  // Every layer blob deleted from storage: each is rebuilt from paths fetched again, byte for byte.
  const dropBlobs = () => Promise.all(image.manifest.layers.map((l) => rm(join(origin.storagePath, ...STORAGE_KEYS.blob(l.digest.slice('sha256:'.length)).split('/')))));
  await dropBlobs();
  const again = await pullVerified(origin.url, 'hello');
  assert.deepEqual(again.blobs, image.blobs);
  assert.ok(origin.logs.some((l) => l.msg === 'store paths of a lost blob fetched again'));
  const metrics = await (await fetch(`${origin.url}/metrics`)).text();
  // Not one per recipe path: a path one layer's rebuild fetched may still be there for the next layer's.
  assert.ok(Number(/^nixery_origin_blob_store_paths_refetched_total (\d+)/m.exec(metrics)?.[1]) > 0, metrics.split('\n').filter((l) => l.includes('refetched')).join('\n'));

  // No cache any more: once collected again, a lost blob cannot be rebuilt.
  await rm(cache, { recursive: true, force: true });
  await eventually(() => paths.every((p) => !existsSync(`${origin.nixDir}/store/${p.slice('/nix/store/'.length)}`)), 'the fetched paths to be collected again', 20_000);
  await dropBlobs();
  const gone = await fetch(`${origin.url}/v2/hello/blobs/${image.manifest.layers[0]!.digest}`);
  assert.equal(gone.status, 404);
  assert.equal(((await gone.json()) as { errors: { code: string }[] }).errors[0]!.code, 'BLOB_UNKNOWN');
});
