// The origin collects its own Nix garbage while it builds: a full collection
// every second, in a store of its own (a private mount namespace, so nothing
// of the store other tests share is touched), while eight images build two
// at a time. Every image must come out complete and byte-correct: each blob
// hashes to its digest and each layer is exactly the tarball of its recipe's
// store paths, as the origin's code makes it from the untouched shared store
// (the fixture set builds reproducibly, so the paths and bytes are the same).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { NIX_SYSTEM, parseImageName } from '../../shared/names.ts';
import { buildDerivations, resolvePackages } from '../../origin/nix/nix.ts';
import { nixEnvironment } from '../../origin/nix/settings.ts';
import { closeSharedDeflatePool } from '../../origin/layers/deflate-pool.ts';
import { mapLimit } from '../../origin/image/map-limit.ts';
import { FIXTURE_PKGS, OFFLINE_NIX_CONFIG } from '../support/origin.ts';
import { startPrivateNixOrigin } from '../support/private-nix.ts';
import { layerRecordOf, pullVerified, referenceDigest } from '../support/verify-image.ts';
import { deferrer } from '../support/cleanup.ts';

const IMAGES = ['hello', 'shell/git', 'jq/curl', 'htop/hello', 'python3packages.requests', 'shell/bigpackage', 'envscript/git', 'openssl/curl/jq'];

type Log = Record<string, unknown>;
const collected = (l: Log) => l.msg === 'nix store garbage collected';

/** Builds the images' packages in the shared store (adding, never deleting), for the reference layers. */
async function buildInSharedStore(names: string[]): Promise<void> {
  const options = { timeoutSeconds: 120, env: nixEnvironment({ NIX_CONFIG: OFFLINE_NIX_CONFIG }) };
  const packages = [...new Set(names.flatMap((name) => parseImageName(name).packages))];
  const resolution = await resolvePackages({ type: 'path', path: FIXTURE_PKGS }, NIX_SYSTEM.amd64, packages, options);
  assert.deepEqual(resolution.problems, []);
  await buildDerivations([...new Set(resolution.packages.flatMap((p) => p.outputs.map((o) => o.drv)))], options);
}

test('with a full Nix garbage collection every second, eight images built two at a time are all complete and byte-correct, and the store is emptied of them afterwards', { timeout: 300_000 }, async (t) => {
  const defer = deferrer(t);
  defer(() => closeSharedDeflatePool());
  const origin = await startPrivateNixOrigin({ env: { NIX_GC_INTERVAL_SECONDS: '1' } });
  defer(() => origin.cleanup());
  const reference = buildInSharedStore(IMAGES);
  reference.catch(() => undefined);

  const builtAt: number[] = [];
  const pulled = await mapLimit(
    IMAGES,
    2,
    async (name) => {
      const image = await pullVerified(origin.url, name);
      builtAt.push(origin.logs.length);
      return { name, image };
    },
    () => 1,
  );

  // Collections ran while the images were built, and took what the builds no longer held.
  const runsDuring = origin.logs.slice(0, Math.max(...builtAt)).filter(collected);
  assert.ok(runsDuring.length >= 3, `collections while building: ${runsDuring.length}`);
  assert.ok(runsDuring.every((l) => l.outcome === 'done'), JSON.stringify(runsDuring.filter((l) => l.outcome !== 'done')));
  const freed = origin.logs.filter(collected).reduce((sum, l) => sum + Number(l.bytesFreed), 0);
  assert.ok(freed > 30 * 1024 * 1024, `bytes freed: ${freed}`);
  assert.deepEqual(origin.logs.filter((l) => Number(l.level) >= 50), [], 'no error was logged');

  await reference;
  for (const { name, image } of pulled) {
    for (const layer of image.manifest.layers) {
      const record = await layerRecordOf(origin.storagePath, layer.digest);
      assert.equal(await referenceDigest(record), layer.digest, `${name}: layer ${layer.digest} (${JSON.stringify(record.recipe).slice(0, 200)}) is the tarball of its store paths`);
    }
  }

  // Every build released its roots; the next collection leaves almost nothing of the images.
  const rootsDir = `${origin.nixDir}/var/nix/gcroots/nixery-edge`;
  const [own] = await readdir(rootsDir);
  assert.deepEqual(await readdir(`${rootsDir}/${own}`), []);
  const runs = origin.logs.filter(collected).length;
  const { eventually } = await import('../support/eventually.ts');
  await eventually(() => origin.logs.filter(collected).length >= runs + 2, 'two more collections', 10_000);
  const left = (await readdir(`${origin.nixDir}/store`)).filter((n) => /-(hello|git|bash|big-package)-/.test(n) && !n.endsWith('.drv'));
  assert.deepEqual(left, [], 'no output of the images is left in the store');
});
