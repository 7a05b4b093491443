// SIGTERM with a build in flight. The `slow` fixture package builds until
// the test creates its gate file, so the test decides whether the build is
// still running when the signal arrives, without guessing at timings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exitOf, largestFile, listFiles, processesMentioning, startOpsOrigin, until, waitForLog, type OpsOrigin } from '../support/ops.ts';

type Log = Record<string, unknown>;

const buildingSlow = (l: Log) => l.msg === 'nix progress' && /^building '.*-ops-slow-1\.0\.drv'/.test(String(l.nix));

async function errorCode(res: Response): Promise<string | undefined> {
  return ((await res.json()) as { errors?: { code: string }[] }).errors?.[0]?.code;
}

/** Nix's build directories are made in TMPDIR as nix-build-<name>-<n>. */
async function nixBuildDirs(origin: OpsOrigin): Promise<string[]> {
  return (await readdir(origin.tmp)).filter((name) => name.startsWith('nix-build-'));
}

test('on SIGTERM with a long grace period, the build in flight finishes and is stored, new builds get 503 UNAVAILABLE, and the process exits 0', async () => {
  const origin = await startOpsOrigin({ SHUTDOWN_GRACE_SECONDS: '300' });
  try {
    const pull = fetch(`${origin.url}/v2/slow/manifests/latest`);
    await waitForLog(origin, buildingSlow, 'Nix building the slow package');
    const exited = exitOf(origin.process);
    origin.process.kill('SIGTERM');
    await waitForLog(origin, (l) => l.msg === 'shutting down: draining', 'the drain to start');

    // Draining: not ready, still alive, no new builds; the build is held by its gate meanwhile.
    const ready = await fetch(`${origin.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal(((await ready.json()) as { status: string }).status, 'draining');
    assert.equal((await fetch(`${origin.url}/healthz`)).status, 200);
    const refused = await fetch(`${origin.url}/v2/hello/manifests/latest`);
    assert.equal(refused.status, 503);
    assert.equal(await errorCode(refused), 'UNAVAILABLE');
    assert.equal(refused.headers.get('connection'), 'close');

    await writeFile(origin.gate, 'go');
    const res = await pull;
    assert.equal(res.status, 200);
    const manifestBytes = Buffer.from(await res.arrayBuffer());
    const manifest = JSON.parse(manifestBytes.toString()) as { layers: { digest: string }[] };
    assert.deepEqual(await exited, { code: 0, signal: null });

    const digest = createHash('sha256').update(manifestBytes).digest('hex');
    const files = await listFiles(origin.storagePath);
    assert.ok(files.includes(`manifests/sha256/${digest}`), 'the manifest was stored');
    for (const layer of manifest.layers) assert.ok(files.includes(`blobs/sha256/${layer.digest.slice('sha256:'.length)}`), `layer ${layer.digest} was stored`);
    assert.ok(files.some((f) => f.startsWith('images/')), 'the image was remembered');
    assert.deepEqual(files.filter((f) => f.startsWith('.tmp/')), []);
    const built = origin.logs.find((l) => l.msg === 'image built');
    assert.equal(built?.image, 'amd64/slow');
    assert.ok(origin.logs.some((l) => l.msg === 'shut down'));
  } catch (err) {
    process.stderr.write(origin.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
    throw err;
  } finally {
    await origin.cleanup();
  }
});

test('on SIGTERM with a short grace period, the build in flight is cancelled: the client gets 503, Nix is stopped, the process exits 0 and nothing partial is left', async () => {
  const origin = await startOpsOrigin({ SHUTDOWN_GRACE_SECONDS: '1' });
  try {
    const pull = fetch(`${origin.url}/v2/slow/manifests/latest`);
    await waitForLog(origin, buildingSlow, 'Nix building the slow package');
    assert.ok((await processesMentioning(origin.gate)).length > 0, 'the builder is running');
    const exited = exitOf(origin.process);
    origin.process.kill('SIGTERM');

    const res = await pull;
    assert.equal(res.status, 503);
    assert.equal(await errorCode(res), 'UNAVAILABLE');
    assert.deepEqual(await exited, { code: 0, signal: null });

    assert.ok(origin.logs.some((l) => l.msg === 'grace period over: cancelling builds in flight'));
    assert.ok(origin.logs.some((l) => l.msg === 'build cancelled' && l.image === 'amd64/slow'));
    assert.ok(!origin.logs.some((l) => l.msg === 'image built'));
    // Nothing of the image in storage, no staged file, no build directory, no builder left running.
    const files = await listFiles(origin.storagePath);
    assert.deepEqual(files.filter((f) => !f.startsWith('health/')), []);
    assert.deepEqual(await nixBuildDirs(origin), []);
    assert.deepEqual(await processesMentioning(origin.gate), []);
  } catch (err) {
    process.stderr.write(origin.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
    throw err;
  } finally {
    await origin.cleanup();
  }
});

test('a build cancelled while it writes a layer leaves no staged file and no partial blob', async () => {
  // 96 MiB of random bytes: gzip takes a while, long enough to cancel mid-write.
  const origin = await startOpsOrigin({ SHUTDOWN_GRACE_SECONDS: '0', SLOW_PKGS_BIG_MIB: '96' });
  try {
    const pull = fetch(`${origin.url}/v2/big/manifests/latest`);
    const staging = join(origin.storagePath, '.tmp');
    await until(async () => (await largestFile(staging)) > 1024 * 1024, 'a layer being written to the staging directory', 120_000);
    const exited = exitOf(origin.process);
    origin.process.kill('SIGTERM');

    const res = await pull;
    assert.equal(res.status, 503);
    assert.deepEqual(await exited, { code: 0, signal: null });
    assert.ok(!origin.logs.some((l) => l.msg === 'image built'));
    assert.ok(origin.logs.some((l) => l.msg === 'build cancelled'));

    const files = await listFiles(origin.storagePath);
    assert.deepEqual(files.filter((f) => f.startsWith('.tmp/') || f.startsWith('manifests/') || f.startsWith('images/')), []);
    // Whatever blob was committed before the cancellation is whole: its content matches its address.
    for (const blob of files.filter((f) => f.startsWith('blobs/'))) {
      const hex = createHash('sha256').update(await readFile(join(origin.storagePath, blob))).digest('hex');
      assert.equal(`blobs/sha256/${hex}`, blob);
    }
    assert.deepEqual(await nixBuildDirs(origin), []);
  } catch (err) {
    process.stderr.write(origin.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
    throw err;
  } finally {
    await origin.cleanup();
  }
});
