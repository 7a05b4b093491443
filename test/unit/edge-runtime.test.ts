// The local runtime of the Worker (scripts/edge-runtime.ts): miniflare's
// stand-ins for the Cache API and KV keep their SQLite files in memory, not
// under the system's temp directory, where every write's fsync held up
// workerd's one thread; and nothing is left behind when the edge stops, or
// when its process exits without stopping it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, existsSync, readdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startEdge } from '../../scripts/edge-runtime.ts';
import { workerBundle } from '../support/edge.ts';
import { ScriptedOrigin } from '../support/scripted-origin.ts';
import { deferrer } from '../support/cleanup.ts';
import { MEDIA } from '../../shared/media-types.ts';


const execFileAsync = promisify(execFile);

/** Whether this machine has a /dev/shm the runtime should use: writable, with 1 GiB free (read here, not from the code under test). */
function roomyShm(): boolean {
  try {
    accessSync('/dev/shm', constants.W_OK);
    const { bavail, bsize } = statfsSync('/dev/shm');
    return bavail * bsize >= 1024 ** 3;
  } catch {
    return false;
  }
}

/** Every file under `dir`, as paths relative to it. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1));
}

test('the stand-ins for the Cache API and KV keep their stores in /dev/shm, and the edge removes them when it stops', { timeout: 60_000, skip: !roomyShm() && 'no /dev/shm with 1 GiB free' }, async (t) => {
  const defer = deferrer(t);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: {}, layers: [] }));
  const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  const origin = new ScriptedOrigin((_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'Content-Type': MEDIA.ociManifest, 'Docker-Content-Digest': digest });
    res.end(manifest);
  });
  await origin.start();
  defer(() => origin.stop());
  const edge = await startEdge({ bundle: await workerBundle(), bindings: { ORIGIN_URL: origin.url }, refuseTls: false });
  let stopped = false;
  defer(() => (stopped ? undefined : edge.stop()));

  const stores = edge.storesDir;
  assert.ok(stores !== null && stores.startsWith('/dev/shm/'), `stores in memory, not ${stores}`);
  // A miss the origin answers is written to the Cache API and to KV (in waitUntil: looked for until there).
  const res = await fetch(`${edge.url}/v2/hello/manifests/latest`, { headers: { Accept: MEDIA.ociManifest } });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  const deadline = Date.now() + 10_000;
  let written: string[] = [];
  while (Date.now() < deadline) {
    written = files(stores);
    if (written.some((f) => f.startsWith('cache/')) && written.some((f) => f.startsWith('kv/'))) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(written.some((f) => f.startsWith('cache/') && f.endsWith('.sqlite')), `the Cache API's store under ${stores}: ${written.join(', ')}`);
  assert.ok(written.some((f) => f.startsWith('kv/') && f.endsWith('.sqlite')), `KV's store under ${stores}: ${written.join(', ')}`);

  await edge.stop();
  stopped = true;
  assert.equal(existsSync(stores), false, 'the stores are removed when the edge stops');
});

test('a process that exits without stopping its edge leaves no store behind', { timeout: 60_000, skip: !roomyShm() && 'no /dev/shm with 1 GiB free' }, async () => {
  // A Worker of one line: what is under test is the runtime, not our Worker (no bundling needed).
  const child = `
    import { startEdge } from ${JSON.stringify(new URL('../../scripts/edge-runtime.ts', import.meta.url).pathname)};
    const bundle = { script: 'export default { fetch: () => new Response("ok") }', compatibilityDate: '2024-09-01', vars: {}, kvNamespaces: [], ratelimits: {} };
    const edge = await startEdge({ bundle, refuseTls: false });
    console.log(edge.storesDir);
    process.exit(0);
  `;
  const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', child], { timeout: 45_000 });
  const stores = stdout.trim();
  assert.match(stores, /^\/dev\/shm\/nixery-edge-stores-/);
  assert.equal(existsSync(stores), false, `${stores} is removed when the process exits`);
});
