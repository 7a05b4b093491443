// The edge end to end: the real Worker (bundled by wrangler, run in workerd
// by miniflare) in front of a real origin building the bundled package set
// with Nix, pulled from by skopeo. Origin requests are counted from the
// origin's own request log.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Storage } from '@google-cloud/storage';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { startEdge, originRequests, clientRequests, type RunningTestEdge } from '../support/edge.ts';
import { pullAndUnpack, runInRootfs } from '../support/clients.ts';
import { startCountingProxy, startGcsEmulator, verifySignedUrl, type CountingProxy, type GcsEmulator } from '../support/gcs-emulator.ts';
import { createHash } from 'node:crypto';
import { parseImageName, requestedImage } from '../../shared/names.ts';
import { globalKey } from '../../edge/global-tier.ts';
import type { ManifestKey } from '../../edge/manifest-cache.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { ORIGIN_SECRET_HEADER } from '../../shared/headers.ts';
import { serviceAccountKeys } from '../support/signing-key.ts';

const SECRET = 'edge-e2e-secret';
const EDGE_CACHE = 'x-nixery-edge-cache';

interface RegistryErrorJson {
  errors: { code: string; message: string; detail: unknown }[];
}

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as RegistryErrorJson;
  assert.equal(body.errors.length, 1, JSON.stringify(body));
  return body.errors[0]!.code;
}

describe('the edge in front of a running origin', () => {
  let origin: RunningOrigin;
  let edge: RunningTestEdge;

  before(async () => {
    origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET } });
    edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET } });
  });
  after(async () => {
    await edge?.stop();
    await origin?.stop();
  });

  test('skopeo pulls hello through the edge and the unpacked image has /bin/hello', async () => {
    const image = await pullAndUnpack(edge.host, 'hello:latest');
    try {
      assert.ok((await lstat(join(image.rootfs, 'bin/hello'))).isSymbolicLink() || (await lstat(join(image.rootfs, 'bin/hello'))).isFile());
    } finally {
      await image.remove();
    }
  });

  test('a second pull of the same image asks the origin for no manifest', async () => {
    const first = await pullAndUnpack(edge.host, 'hello:latest');
    await first.remove();
    const manifestsBefore = originRequests(origin.logs, '/manifests/').length;
    const second = await pullAndUnpack(edge.host, 'hello:latest');
    await second.remove();
    assert.equal(originRequests(origin.logs, '/manifests/').length, manifestsBefore);
  });

  test('the origin refuses a request without the secret, which the edge sends', async () => {
    const direct = await fetch(`${origin.url}/v2/hello/manifests/latest`);
    assert.equal(direct.status, 403);
    assert.equal(await errorCode(direct), 'DENIED');
    const wrong = await fetch(`${origin.url}/v2/hello/manifests/latest`, { headers: { [ORIGIN_SECRET_HEADER]: 'not-it' } });
    assert.equal(wrong.status, 403);
    const throughEdge = await fetch(`${edge.url}/v2/hello/manifests/latest`);
    assert.equal(throughEdge.status, 200);
  });

  test('HEAD of a manifest is answered from the cache with the headers of GET and no body', async () => {
    const get = await fetch(`${edge.url}/v2/hello/manifests/latest`);
    const body = new Uint8Array(await get.arrayBuffer());
    const requestsBefore = originRequests(origin.logs, '/v2/').length;
    const head = await fetch(`${edge.url}/v2/hello/manifests/latest`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    for (const name of ['content-type', 'content-length', 'docker-content-digest', 'etag', 'docker-distribution-api-version']) {
      assert.equal(head.headers.get(name), get.headers.get(name), name);
    }
    assert.equal(head.headers.get('content-length'), String(body.byteLength));
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    assert.equal(head.headers.get(EDGE_CACHE), 'memory');
    const digest = get.headers.get('docker-content-digest')!;
    const byDigest = await fetch(`${edge.url}/v2/hello/manifests/${digest}`, { method: 'HEAD' });
    assert.equal(byDigest.status, 200);
    assert.equal(byDigest.headers.get('docker-content-digest'), digest);
    assert.equal(originRequests(origin.logs, '/v2/').length, requestsBefore);
  });

  test('a manifest from the edge is byte for byte the origin’s, in each format, with the origin’s headers', async () => {
    for (const accept of [MEDIA.dockerManifest, MEDIA.ociManifest]) {
      const fromEdge = await fetch(`${edge.url}/v2/hello/manifests/latest`, { headers: { accept } });
      const fromOrigin = await fetch(`${origin.url}/v2/hello/manifests/latest`, { headers: { accept, [ORIGIN_SECRET_HEADER]: SECRET } });
      assert.equal(fromEdge.status, 200);
      assert.deepEqual(new Uint8Array(await fromEdge.arrayBuffer()), new Uint8Array(await fromOrigin.arrayBuffer()));
      for (const name of ['content-type', 'content-length', 'docker-content-digest', 'etag', 'docker-distribution-api-version']) {
        assert.equal(fromEdge.headers.get(name), fromOrigin.headers.get(name), `${accept}: ${name}`);
      }
      assert.equal(fromEdge.headers.get('content-type'), accept);
    }
  });

  test('blobs are streamed from the origin with filesystem storage, ranges included', async () => {
    const manifest = (await (await fetch(`${edge.url}/v2/hello/manifests/latest`)).json()) as { layers: { digest: string; size: number }[] };
    const layer = manifest.layers[0]!;
    const whole = await fetch(`${edge.url}/v2/hello/blobs/${layer.digest}`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('docker-content-digest'), layer.digest);
    const bytes = new Uint8Array(await whole.arrayBuffer());
    assert.equal(bytes.byteLength, layer.size);
    const part = await fetch(`${edge.url}/v2/hello/blobs/${layer.digest}`, { headers: { range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 10-19/${layer.size}`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.slice(10, 20));
    const head = await fetch(`${edge.url}/v2/hello/blobs/${layer.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(layer.size));
    const missing = await fetch(`${edge.url}/v2/hello/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(missing.status, 404);
    assert.equal(await errorCode(missing), 'BLOB_UNKNOWN');
  });

  test('bad names and references are refused at the edge and never reach the origin', async () => {
    const before = origin.logs.length;
    const cases: [string, string, number, string][] = [
      ['GET', '/v2/Hello/manifests/latest', 400, 'NAME_INVALID'],
      ['GET', '/v2/hello..world/manifests/latest', 400, 'NAME_INVALID'],
      ['GET', '/v2/amd64/manifests/latest', 400, 'NAME_INVALID'],
      ['HEAD', '/v2/-hello/manifests/latest', 400, 'NAME_INVALID'],
      ['GET', '/v2/hello%zz/manifests/latest', 400, 'NAME_INVALID'],
      ['GET', '/v2/hello/manifests/%E0%A4%A', 400, 'NAME_INVALID'],
      ['GET', '/v2/hello/manifests/sha256:abc', 400, 'DIGEST_INVALID'],
      ['GET', '/v2/hello/blobs/md5:abc', 400, 'DIGEST_INVALID'],
      ['GET', '/v2/hello/manifests/.bad-tag', 404, 'MANIFEST_UNKNOWN'],
      ['PUT', '/v2/hello/manifests/latest', 405, 'UNSUPPORTED'],
      ['POST', '/v2/hello/blobs/uploads/', 405, 'UNSUPPORTED'],
      ['GET', '/v2/_catalog', 405, 'UNSUPPORTED'],
      ['GET', '/v2/hello/referrers/x', 400, 'DIGEST_INVALID'],
    ];
    for (const [method, path, status, code] of cases) {
      const res = await fetch(`${edge.url}${path}`, { method });
      assert.equal(res.status, status, `${method} ${path}`);
      assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
      if (method !== 'HEAD') assert.equal(await errorCode(res), code, `${method} ${path}`);
    }
    // The origin logs every request it gets, refused or not.
    assert.equal(clientRequests(origin.logs.slice(before)).length, 0);
  });

  test('the origin’s own endpoints (/healthz, /metrics) are not forwarded', async () => {
    const before = origin.logs.length;
    for (const path of ['/healthz', '/readyz', '/metrics', '/v3/']) {
      const res = await fetch(`${edge.url}${path}`);
      assert.equal(res.status, 404, path);
      assert.equal(await errorCode(res), 'NAME_UNKNOWN');
    }
    assert.equal(clientRequests(origin.logs.slice(before)).length, 0);
  });

  test('an unknown package is the origin’s MANIFEST_UNKNOWN, passed through', async () => {
    const res = await fetch(`${edge.url}/v2/hello/nosuchpackage/manifests/latest`);
    assert.equal(res.status, 404);
    const body = (await res.json()) as RegistryErrorJson;
    assert.equal(body.errors[0]!.code, 'MANIFEST_UNKNOWN');
    assert.match(body.errors[0]!.message, /nosuchpackage/);
  });

  test('/v2/ and the landing page are answered by the edge', async () => {
    const before = origin.logs.length;
    const base = await fetch(`${edge.url}/v2/`);
    assert.equal(base.status, 200);
    assert.equal(await base.text(), '{}');
    const page = await fetch(`${edge.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await page.text(), new RegExp(`docker pull ${edge.host.replace(/\./g, '\\.')}/shell/hello`));
    assert.equal(clientRequests(origin.logs.slice(before)).length, 0);
  });
});

describe('stale if error: the origin stops', () => {
  let origin: RunningOrigin;
  let edge: RunningTestEdge;
  let cacheDir: string;
  // MANIFEST_TAG_TTL=0: every tag request asks the origin, so a failing origin shows at once, without waiting for a TTL.
  const bindings = { ORIGIN_SECRET: SECRET, MANIFEST_TAG_TTL: '0', STALE_TIMEOUT_MS: '2000' };

  before(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'edge-cache-'));
    origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET } });
    edge = await startEdge(origin.url, { bindings, cachePersist: cacheDir });
  });
  after(async () => {
    await edge?.stop();
    await origin?.stop();
    await rm(cacheDir, { recursive: true, force: true });
  });

  let digest: string;

  test('a cached manifest is served stale while the origin is down, and an uncached one is 503 UNAVAILABLE', async () => {
    const fresh = await fetch(`${edge.url}/v2/hello/manifests/latest`);
    assert.equal(fresh.status, 200);
    assert.equal(fresh.headers.get(EDGE_CACHE), 'miss');
    const freshBody = await fresh.text();
    digest = fresh.headers.get('docker-content-digest')!;
    await origin.stop({ keepStorage: true });

    const stale = await fetch(`${edge.url}/v2/hello/manifests/latest`);
    assert.equal(stale.status, 200);
    assert.equal(stale.headers.get(EDGE_CACHE), 'stale');
    assert.equal(stale.headers.get('docker-content-digest'), fresh.headers.get('docker-content-digest'));
    assert.equal(await stale.text(), freshBody);

    const head = await fetch(`${edge.url}/v2/hello/manifests/latest`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(freshBody)));

    const uncached = await fetch(`${edge.url}/v2/shell/manifests/latest`);
    assert.equal(uncached.status, 503);
    assert.equal(uncached.headers.get('content-type'), 'application/json');
    assert.equal(await errorCode(uncached), 'UNAVAILABLE');
  });

  test('a restarted edge (a new isolate, empty memory) serves the stale copy from the Cache API', async () => {
    // The same host and port: the Cache API keys entries under the Worker's own origin.
    const port = edge.port;
    await edge.stop();
    edge = await startEdge(origin.url, { bindings, cachePersist: cacheDir, port });
    // Digests are immutable: fresh from the Cache API however long the origin is gone.
    const byDigest = await fetch(`${edge.url}/v2/hello/manifests/${digest}`);
    assert.equal(byDigest.status, 200);
    assert.equal(byDigest.headers.get(EDGE_CACHE), 'cache');
    const stale = await fetch(`${edge.url}/v2/hello/manifests/latest`);
    assert.equal(stale.status, 200);
    assert.equal(stale.headers.get(EDGE_CACHE), 'stale');
    assert.equal(stale.headers.get('docker-content-digest'), digest);
  });
});

describe('blobs with GCS storage', () => {
  const account = 'nixery-edge@demo-project.iam.gserviceaccount.com';
  const bucket = 'nixery-edge-layers';
  const keys = serviceAccountKeys();
  let origin: RunningOrigin;
  let edge: RunningTestEdge;

  before(async () => {
    // The origin keeps filesystem storage: the point is that the edge never asks it about blobs.
    origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET } });
    edge = await startEdge(origin.url, {
      bindings: {
        ORIGIN_SECRET: SECRET,
        STORAGE_BACKEND: 'gcs',
        BUCKET: bucket,
        GCS_SIGNING_ACCOUNT: account,
        GCS_SIGNING_KEY: keys.privateKey,
        GCS_URL_LIFETIME: '600',
      },
    });
  });
  after(async () => {
    await edge?.stop();
    await origin?.stop();
  });

  test('a blob request is a 307 to a URL the edge signed, with no origin request, equal to @google-cloud/storage’s', async () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const before = origin.logs.length;
    const res = await fetch(`${edge.url}/v2/hello/blobs/${digest}`, { redirect: 'manual' });
    assert.equal(res.status, 307);
    assert.equal(res.headers.get('docker-content-digest'), digest);
    const location = res.headers.get('location')!;
    assert.ok(verifySignedUrl(location, keys.publicKey), 'the URL verifies with the public key');
    const url = new URL(location);
    assert.equal(url.origin, 'https://storage.googleapis.com');
    assert.equal(url.pathname, `/${bucket}/blobs/sha256/${'ab'.repeat(32)}`);
    assert.equal(url.searchParams.get('X-Goog-Expires'), '600');

    // The library signs for the time the Worker's URL states; the same key, object and time must give the same bytes.
    const stamp = url.searchParams.get('X-Goog-Date')!;
    const at = Date.UTC(+stamp.slice(0, 4), +stamp.slice(4, 6) - 1, +stamp.slice(6, 8), +stamp.slice(9, 11), +stamp.slice(11, 13), +stamp.slice(13, 15));
    const library = new Storage({ projectId: 'demo-edge', credentials: { client_email: account, private_key: keys.privateKey } });
    const [expected] = await library.bucket(bucket).file(`blobs/sha256/${'ab'.repeat(32)}`).getSignedUrl({
      version: 'v4',
      action: 'read',
      accessibleAt: new Date(at),
      expires: at + 600 * 1000,
    });
    assert.equal(location, expected);

    const head = await fetch(`${edge.url}/v2/hello/blobs/${digest}`, { method: 'HEAD', redirect: 'manual' });
    assert.equal(head.status, 307);
    assert.equal(head.headers.get('location'), location, 'a recent URL is reused');
    assert.equal(clientRequests(origin.logs.slice(before)).length, 0);
  });

  test('manifests still come from the origin, and the pull API otherwise behaves the same', async () => {
    const res = await fetch(`${edge.url}/v2/hello/manifests/latest`);
    assert.equal(res.status, 200);
    const bad = await fetch(`${edge.url}/v2/hello/blobs/sha256:xyz`, { redirect: 'manual' });
    assert.equal(bad.status, 400);
    assert.equal(await errorCode(bad), 'DIGEST_INVALID');
  });
});

describe('a pull through the edge with GCS storage (the storage emulator)', () => {
  const keys = serviceAccountKeys();
  const account = 'nixery-edge@demo-nixery-edge.iam.gserviceaccount.com';
  let emulator: GcsEmulator;
  let origin: RunningOrigin;
  let edge: RunningTestEdge;

  before(async () => {
    emulator = await startGcsEmulator();
    // Origin and edge share the bucket, the endpoint and the signing key, as deployed.
    const storage = {
      STORAGE_BACKEND: 'gcs',
      BUCKET: 'nixery-edge-e2e',
      GCS_API_ENDPOINT: emulator.url,
      GCS_SIGNING_ACCOUNT: account,
      GCS_SIGNING_KEY: keys.privateKey,
    };
    origin = await startOrigin({ env: { ...storage, ORIGIN_SECRET: SECRET, GOOGLE_CLOUD_PROJECT: 'demo-nixery-edge' } });
    edge = await startEdge(origin.url, { bindings: { ...storage, ORIGIN_SECRET: SECRET } });
  });
  after(async () => {
    await edge?.stop();
    await origin?.stop();
    await emulator?.stop();
  });

  test('skopeo pulls through the edge, blobs come from storage by the edge’s redirects, and the origin serves none', async () => {
    const image = await pullAndUnpack(edge.host, 'hello:latest');
    try {
      assert.equal((await runInRootfs(image.rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
    } finally {
      await image.remove();
    }
    const manifest = (await (await fetch(`${edge.url}/v2/hello/manifests/latest`)).json()) as { layers: { digest: string }[] };
    const blob = await fetch(`${edge.url}/v2/hello/blobs/${manifest.layers[0]!.digest}`, { redirect: 'manual' });
    assert.equal(blob.status, 307);
    const location = blob.headers.get('location')!;
    assert.ok(location.startsWith(`${emulator.url}/nixery-edge-e2e/blobs/sha256/`), location);
    assert.ok(verifySignedUrl(location, keys.publicKey));
    assert.equal(originRequests(origin.logs, '/blobs/').length, 0);
  });
});

/** Waits until the global tier (KV, read through miniflare) holds a record for `key`: edges write it after their response. */
async function inGlobalTier(edge: RunningTestEdge, key: ManifestKey): Promise<void> {
  const kv = await edge.miniflare.getKVNamespace('GLOBAL_MANIFESTS');
  for (let attempt = 0; attempt < 100; attempt++) {
    if ((await kv.getWithMetadata(globalKey(key))).metadata !== null) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`the global tier never held ${globalKey(key)}`);
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('two regions, one global tier, blobs served by the edge (BLOB_DELIVERY=edge, the storage emulator)', () => {
  const keys = serviceAccountKeys();
  const account = 'nixery-edge@demo-nixery-edge.iam.gserviceaccount.com';
  const bucket = 'nixery-edge-regions';
  let emulator: GcsEmulator;
  let proxy: CountingProxy;
  let origin: RunningOrigin;
  let first: RunningTestEdge;
  let second: RunningTestEdge;
  let third: RunningTestEdge | undefined;
  let kvDir: string;
  let edgeBindings: Record<string, string>;

  before(async () => {
    emulator = await startGcsEmulator();
    // The edges reach storage through a counting proxy; the origin writes to the emulator directly.
    proxy = await startCountingProxy(emulator.url);
    const storage = { STORAGE_BACKEND: 'gcs', BUCKET: bucket, GCS_SIGNING_ACCOUNT: account, GCS_SIGNING_KEY: keys.privateKey };
    origin = await startOrigin({ env: { ...storage, GCS_API_ENDPOINT: emulator.url, ORIGIN_SECRET: SECRET, GOOGLE_CLOUD_PROJECT: 'demo-nixery-edge' } });
    kvDir = await mkdtemp(join(tmpdir(), 'edge-kv-'));
    edgeBindings = { ...storage, GCS_API_ENDPOINT: proxy.url, BLOB_DELIVERY: 'edge', ORIGIN_SECRET: SECRET };
    // Two data centres: each its own isolate and Cache API (in memory), one KV directory between them.
    first = await startEdge(origin.url, { bindings: edgeBindings, kvPersist: kvDir });
    second = await startEdge(origin.url, { bindings: edgeBindings, kvPersist: kvDir });
  });
  after(async () => {
    await third?.stop();
    await second?.stop();
    await first?.stop();
    await origin?.stop();
    await proxy?.stop();
    await emulator?.stop();
    if (kvDir) await rm(kvDir, { recursive: true, force: true });
  });

  const helloTag: ManifestKey = { kind: 'tag', format: 'docker', image: requestedImage(parseImageName('hello')), tag: 'latest' };
  let layers: { digest: string; size: number }[] = [];

  test('the second region serves an image first pulled through the first, with no origin request', async () => {
    const image = await pullAndUnpack(first.host, 'hello:latest');
    try {
      assert.equal((await runInRootfs(image.rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
    } finally {
      await image.remove();
    }
    // skopeo reads indexes, so its answer is keyed apart from a plain client's: ask region 1 the plain question too.
    await (await fetch(`${first.url}/v2/hello/manifests/latest`)).arrayBuffer();
    await inGlobalTier(first, helloTag);
    const originBefore = originRequests(origin.logs, '/v2/').length;
    const manifest = await fetch(`${second.url}/v2/hello/manifests/latest`);
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get(EDGE_CACHE), 'global');
    const again = await pullAndUnpack(second.host, 'hello:latest');
    try {
      assert.equal((await runInRootfs(again.rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
    } finally {
      await again.remove();
    }
    assert.equal(originRequests(origin.logs, '/v2/').length, originBefore, 'no request of the second region reached the origin');
    layers = ((await manifest.json()) as { layers: { digest: string; size: number }[] }).layers;
  });

  test('a repeat blob pull in one region touches neither storage nor the origin, and its bytes match the digest', async () => {
    const layer = layers[0]!;
    const url = `${first.url}/v2/hello/blobs/${layer.digest}`;
    // skopeo's pull stored it; the cache write happens after the response, so wait until a request is answered from it.
    let res = await fetch(url);
    for (let attempt = 0; attempt < 50 && res.headers.get(EDGE_CACHE) !== 'cache'; attempt++) {
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, 100));
      res = await fetch(url);
    }
    assert.equal(res.headers.get(EDGE_CACHE), 'cache');
    await res.arrayBuffer();
    const storageBefore = proxy.requests.length;
    const originBefore = clientRequests(origin.logs).length;
    const whole = await fetch(url);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get(EDGE_CACHE), 'cache');
    assert.equal(whole.headers.get('docker-content-digest'), layer.digest);
    assert.equal(whole.headers.get('content-length'), String(layer.size));
    assert.equal(whole.headers.get('docker-distribution-api-version'), 'registry/2.0');
    const bytes = new Uint8Array(await whole.arrayBuffer());
    assert.equal(sha256(bytes), layer.digest);
    assert.equal(proxy.requests.length, storageBefore, 'no storage request');
    assert.equal(clientRequests(origin.logs).length, originBefore, 'no origin request');
  });

  test('Range and HEAD are answered from the cached blob', async () => {
    const layer = layers[0]!;
    const url = `${first.url}/v2/hello/blobs/${layer.digest}`;
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const storageBefore = proxy.requests.length;
    const part = await fetch(url, { headers: { range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 10-19/${layer.size}`);
    assert.equal(part.headers.get('content-length'), '10');
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.slice(10, 20));
    const tail = await fetch(url, { headers: { range: 'bytes=-7' } });
    assert.equal(tail.status, 206);
    assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.slice(-7));
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(layer.size));
    assert.equal(head.headers.get('docker-content-digest'), layer.digest);
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    const beyond = await fetch(url, { headers: { range: `bytes=${layer.size + 10}-${layer.size + 20}` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${layer.size}`);
    assert.equal(await errorCode(beyond), 'UNKNOWN');
    assert.equal(proxy.requests.length, storageBefore, 'no storage request');
  });

  test('HEAD in the other region, and an unknown blob is storage’s 404 as BLOB_UNKNOWN', async () => {
    const layer = layers[layers.length - 1]!;
    const url = `${second.url}/v2/hello/blobs/${layer.digest}`;
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(layer.size));
    const storageBefore = proxy.requests.length;
    const missing = await fetch(`${second.url}/v2/hello/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(missing.status, 404);
    assert.equal(await errorCode(missing), 'BLOB_UNKNOWN');
    assert.equal(proxy.requests.length, storageBefore + 1);
    const res = await fetch(url);
    assert.equal(sha256(new Uint8Array(await res.arrayBuffer())), layer.digest);
  });

  test('bytes that do not match their digest are never cached (nor delivered whole)', async () => {
    const wrong = new TextEncoder().encode('not the blob you asked for');
    const claimed = `sha256:${'e'.repeat(64)}`;
    const client = new Storage({ projectId: 'demo-nixery-edge', apiEndpoint: emulator.url, credentials: { client_email: account, private_key: keys.privateKey } });
    await client.bucket(bucket).file(`blobs/sha256/${'e'.repeat(64)}`).save(Buffer.from(wrong), { resumable: false });
    const url = `${first.url}/v2/hello/blobs/${claimed}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const before = proxy.requests.length;
      const res = await fetch(url);
      assert.equal(res.headers.get(EDGE_CACHE), 'miss', 'fetched from storage every time');
      // The last chunk is held back until the digest is known: the client never holds the wrong bytes whole.
      const received = await res.arrayBuffer().then((body) => new Uint8Array(body), () => null);
      assert.notDeepEqual(received, wrong);
      assert.equal(proxy.requests.length, before + 1);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  test('with the origin down, a region that never pulled the image serves it from the global tier and storage', async () => {
    await origin.stop();
    third = await startEdge(origin.url, { bindings: edgeBindings, kvPersist: kvDir });
    const image = await pullAndUnpack(third.host, 'hello:latest');
    try {
      assert.equal((await runInRootfs(image.rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
    } finally {
      await image.remove();
    }
    const manifest = await fetch(`${third.url}/v2/hello/manifests/latest`);
    assert.equal(manifest.status, 200);
    assert.ok(['memory', 'stale', 'global'].includes(manifest.headers.get(EDGE_CACHE) ?? ''), manifest.headers.get(EDGE_CACHE) ?? '');
    const uncached = await fetch(`${third.url}/v2/shell/manifests/latest`);
    assert.equal(uncached.status, 503);
  });
});
