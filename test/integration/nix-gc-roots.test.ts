// Why builds hold GC roots, and that they hold them exactly while they need
// them. Each test runs Nix in a store of its own (a private mount namespace
// over an empty /nix), so collecting garbage touches nothing of the store
// other tests share.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { FIXTURE_PKGS, NODE, OFFLINE_NIX_CONFIG, REPO } from '../support/origin.ts';
import { privateNamespaceArgs, startPrivateNixOrigin } from '../support/private-nix.ts';
import { pullVerified } from '../support/verify-image.ts';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';
import { SLOW_PKGS, until } from '../support/ops.ts';

type Log = Record<string, unknown>;

/** Runs a Node script (ES module text) in a private mount and PID namespace with an empty /nix; returns its JSON output. */
async function inPrivateStore(script: string): Promise<unknown> {
  const store = await mkdtemp(join(tmpdir(), 'nixery-private-nix-'));
  try {
    const result = await execa('unshare', privateNamespaceArgs(['sh', '-c', 'mount --bind "$PRIVATE_NIX" /nix && exec "$NODE" --input-type=module -e "$SCRIPT"']), {
      env: { PRIVATE_NIX: store, NODE, SCRIPT: script, NIX_CONFIG: OFFLINE_NIX_CONFIG },
      cwd: REPO,
      reject: false,
      timeout: 120_000,
    });
    assert.equal(result.exitCode, 0, result.stderr);
    return JSON.parse(result.stdout.trim().split('\n').at(-1)!);
  } finally {
    await rm(store, { recursive: true, force: true });
  }
}

test('the .drv files an evaluation writes are collected unless rooted, and rooted outputs stay from the moment they are built until their roots go', { timeout: 180_000 }, async () => {
  const module = (path: string) => JSON.stringify(join(REPO, path));
  const result = (await inPrivateStore(`
    import { existsSync } from 'node:fs';
    import { resolvePackages, buildDerivations, collectGarbage } from ${module('origin/nix/nix.ts')};
    import { GcRoots } from ${module('origin/nix/gc-roots.ts')};
    import { GcLock } from ${module('origin/nix/gc-lock.ts')};
    const options = { timeoutSeconds: 60 };
    const source = { type: 'path', path: ${JSON.stringify(FIXTURE_PKGS)} };
    const evaluate = async () => {
      const r = await resolvePackages(source, 'x86_64-linux', ['hello'], options);
      return { drvs: [...new Set(r.packages.flatMap((p) => p.outputs.map((o) => o.drv)))], outs: r.packages.flatMap((p) => p.outputs.map((o) => o.out)) };
    };
    const all = (paths) => paths.every((p) => existsSync(p));
    const none = (paths) => paths.every((p) => !existsSync(p));
    const out = {};

    // As the origin did before roots: evaluate, and a collection comes before nix-build.
    let { drvs, outs } = await evaluate();
    out.drvsAfterEvaluation = all(drvs);
    await collectGarbage(null, options);
    out.drvsAfterCollection = !none(drvs);

    // With a root set: the .drv files survive, the outputs are kept once built.
    const { roots } = await GcRoots.open('/nix/var/nix/gcroots/nixery-edge', new GcLock());
    const set = roots.hold();
    const { missing } = await set.evaluate(evaluate, (r) => [...r.drvs, ...r.outs]);
    ({ drvs, outs } = await evaluate());
    out.missingAtRooting = missing.filter((p) => drvs.includes(p));
    await collectGarbage(null, options);
    out.rootedDrvsAfterCollection = all(drvs);
    await buildDerivations(drvs, options);
    await collectGarbage(null, options);
    out.outputsAfterCollection = all(outs);
    await set.release();
    out.afterRelease = await collectGarbage(null, options);
    out.outputsAfterRelease = !none(outs);
    out.drvsAfterRelease = !none(drvs);
    console.log(JSON.stringify(out));
  `)) as Record<string, unknown>;
  assert.equal(result.drvsAfterEvaluation, true, 'nix-instantiate wrote the .drv files');
  assert.equal(result.drvsAfterCollection, false, 'without roots, a collection between evaluation and build takes them');
  assert.deepEqual(result.missingAtRooting, []);
  assert.equal(result.rootedDrvsAfterCollection, true, 'rooted, they survive a collection');
  assert.equal(result.outputsAfterCollection, true, 'outputs rooted before they existed are kept once built');
  assert.ok((result.afterRelease as { paths: number }).paths > 0);
  assert.equal(result.outputsAfterRelease, false, 'once released, the outputs are collected');
  assert.equal(result.drvsAfterRelease, false, 'and so are the .drv files');
});

test('a build holds roots for its .drv files and outputs while collections run every second, serves a correct image, and leaves no root behind; the next collection then takes its output', { timeout: 180_000 }, async (t) => {
  const defer = deferrer(t);
  const gate = join(await mkdtemp(join(tmpdir(), 'nixery-gate-')), 'release');
  defer(() => rm(join(gate, '..'), { recursive: true, force: true }));
  const origin = await startPrivateNixOrigin({
    env: { NIXERY_PKGS_PATH: SLOW_PKGS, SLOW_PKGS_GATE: gate, SLOW_PKGS_SALT: String(Date.now()), NIX_GC_INTERVAL_SECONDS: '1' },
  });
  defer(() => origin.cleanup());
  const collected = (l: Log) => l.msg === 'nix store garbage collected';
  const metric = async (name: string) => {
    const text = await (await fetch(`${origin.url}/metrics`)).text();
    return Number(new RegExp(`^nixery_origin_${name} (\\S+)$`, 'm').exec(text)?.[1]);
  };

  const pull = pullVerified(origin.url, 'slow');
  pull.catch(() => undefined);
  await eventually(() => origin.logs.some((l) => l.msg === 'nix progress' && /building '.*-ops-slow-1\.0\.drv'/.test(String(l.nix))), 'Nix building slow', 60_000);
  const buildingAt = origin.logs.length;
  await eventually(() => origin.logs.slice(buildingAt).filter(collected).length >= 2, 'two collections during the build', 30_000);

  const rootsDir = `${origin.nixDir}/var/nix/gcroots/nixery-edge`;
  const [own] = await readdir(rootsDir);
  const sets = await readdir(`${rootsDir}/${own}`);
  assert.equal(sets.length, 1, 'one root set: the build in flight');
  const rooted = await readdir(`${rootsDir}/${own}/${sets[0]}`);
  assert.ok(rooted.some((n) => /-ops-slow-1\.0\.drv$/.test(n)), `the .drv is rooted: ${rooted.join(' ')}`);
  const output = rooted.find((n) => /-ops-slow-1\.0$/.test(n));
  assert.ok(output, `the output is rooted before it exists: ${rooted.join(' ')}`);
  assert.equal(await metric('nix_gc_root_sets'), 1);

  await writeFile(gate, 'go');
  const image = await pull;
  // The slow package's own layer holds its program, whole.
  const layers = image.blobs.map((b) => gunzipSync(b).toString('latin1'));
  assert.ok(layers.some((tar) => tar.includes(`nix/store/${output}/bin/slow`) && tar.includes('echo slept')), 'the layer of the output holds bin/slow');
  assert.equal(await metric('nix_gc_root_sets'), 0);
  assert.deepEqual(await readdir(`${rootsDir}/${own}`), [], 'no root is left');
  const { existsSync } = await import('node:fs');
  await eventually(() => !existsSync(`${origin.nixDir}/store/${output}`), 'the output to be collected once unrooted', 15_000);
  // Counted when the collection that deleted it ends. Nix counts freed space in MiB with two
  // decimals: a small script frees "0.00 MiB", but it is a deleted path.
  await until(async () => (await metric('nix_gc_deleted_paths_total')) > 0, 'the collection to count its deleted paths', 15_000);
});
