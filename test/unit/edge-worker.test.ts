// The Worker in workerd against a scripted origin: a small HTTP server whose
// answers each test sets (slow, failing, refusing, wrong), to show how the
// edge caches, shares and covers for its origin. No Nix here; the real
// origin is in test/e2e/edge.test.ts.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ScriptedOrigin } from '../support/scripted-origin.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEdge, type RunningTestEdge } from '../support/edge.ts';
import { globalKey } from '../../edge/global-tier.ts';
import { parseImageName, requestedImage } from '../../shared/names.ts';
import type { Digest } from '../../shared/digest.ts';
import type { ManifestKey } from '../../edge/manifest-cache.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { ORIGIN_SECRET_HEADER, REQUEST_ID_HEADER } from '../../shared/headers.ts';

const SECRET = 'unit-secret';
const EDGE_CACHE = 'x-nixery-edge-cache';


/** What the real origin answers for a manifest: bytes per format, their digest, the format's media type. */
function manifestFor(path: string, accept: string | undefined, version = 1): { bytes: Buffer; digest: string; mediaType: string } {
  const mediaType = accept === MEDIA.ociManifest ? MEDIA.ociManifest : MEDIA.dockerManifest;
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, path, version }));
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, mediaType };
}

function serveManifest(req: IncomingMessage, res: ServerResponse, version = 1): void {
  const m = manifestFor(req.url ?? '', req.headers.accept, version);
  res.writeHead(200, { 'Content-Type': m.mediaType, 'Content-Length': m.bytes.length, 'Docker-Content-Digest': m.digest });
  res.end(m.bytes);
}

function serveError(res: ServerResponse, status: number, code: string, message: string, detail: unknown = null): void {
  const body = JSON.stringify({ errors: [{ code, message, detail }] });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function errorOf(res: Response): Promise<{ code: string; message: string; detail: unknown }> {
  const body = (await res.json()) as { errors: { code: string; message: string; detail: unknown }[] };
  return body.errors[0]!;
}

describe('the edge with a default configuration', () => {
  const origin = new ScriptedOrigin((req, res) => serveManifest(req, res));
  let edge: RunningTestEdge;

  before(async () => {
    await origin.start();
    edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET, STALE_TIMEOUT_MS: '300', ORIGIN_TIMEOUT_MS: '1500' } });
  });
  after(async () => {
    await edge?.stop();
    await origin.stop();
  });

  test('the edge sends the secret and the client’s request id to the origin, and returns the id', async () => {
    origin.handler = (req, res) => serveManifest(req, res);
    const res = await fetch(`${edge.url}/v2/ids/manifests/latest`, { headers: { [REQUEST_ID_HEADER]: 'client-id-42' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get(REQUEST_ID_HEADER), 'client-id-42');
    const seen = origin.seen.find((r) => r.path === '/v2/ids/manifests/latest')!;
    assert.equal(seen.headers[ORIGIN_SECRET_HEADER.toLowerCase()], SECRET);
    assert.equal(seen.headers[REQUEST_ID_HEADER.toLowerCase()], 'client-id-42');
    const made = await fetch(`${edge.url}/v2/ids/manifests/latest`, { headers: { [REQUEST_ID_HEADER]: 'not a valid id!' } });
    assert.match(made.headers.get(REQUEST_ID_HEADER) ?? '', /^[0-9a-f-]{36}$/);
  });

  test('concurrent misses for one manifest share one origin request', async () => {
    origin.handler = async (req, res) => {
      await sleep(400);
      serveManifest(req, res);
    };
    const answers = await Promise.all(Array.from({ length: 6 }, () => fetch(`${edge.url}/v2/together/manifests/latest`)));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200, 200, 200],
    );
    assert.equal(new Set(answers.map((a) => a.headers.get('docker-content-digest'))).size, 1);
    assert.equal(origin.count('/v2/together/'), 1);
  });

  test('Docker and OCI answers for one tag are cached apart, each asked of the origin in its own format', async () => {
    origin.handler = (req, res) => serveManifest(req, res);
    const docker = await fetch(`${edge.url}/v2/formats/manifests/latest`, { headers: { accept: `${MEDIA.ociManifest}, ${MEDIA.dockerManifest}` } });
    const oci = await fetch(`${edge.url}/v2/formats/manifests/latest`, { headers: { accept: MEDIA.ociManifest } });
    assert.equal(docker.headers.get('content-type'), MEDIA.dockerManifest);
    assert.equal(oci.headers.get('content-type'), MEDIA.ociManifest);
    assert.notEqual(docker.headers.get('docker-content-digest'), oci.headers.get('docker-content-digest'));
    const again = await fetch(`${edge.url}/v2/formats/manifests/latest`, { headers: { accept: MEDIA.ociManifest } });
    assert.equal(again.headers.get('docker-content-digest'), oci.headers.get('docker-content-digest'));
    assert.equal(again.headers.get(EDGE_CACHE), 'memory');
    assert.deepEqual(
      origin.seen.filter((r) => r.path.startsWith('/v2/formats/')).map((r) => r.headers.accept),
      [MEDIA.dockerManifest, MEDIA.ociManifest],
    );
  });

  test('names that specify the same image share one cache entry', async () => {
    origin.handler = (req, res) => serveManifest(req, res);
    const first = await fetch(`${edge.url}/v2/jq/curl/manifests/latest`);
    const second = await fetch(`${edge.url}/v2/curl/jq/manifests/latest`);
    assert.equal(second.headers.get('docker-content-digest'), first.headers.get('docker-content-digest'));
    assert.equal(origin.count('/jq/curl/') + origin.count('/curl/jq/'), 1);
  });

  test('a HEAD on a cold cache fetches the manifest with GET once, and the GET after it is a hit', async () => {
    origin.handler = (req, res) => serveManifest(req, res);
    const head = await fetch(`${edge.url}/v2/headfirst/manifests/latest`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    const get = await fetch(`${edge.url}/v2/headfirst/manifests/latest`);
    assert.equal(get.headers.get(EDGE_CACHE), 'memory');
    assert.equal(head.headers.get('content-length'), String((await get.arrayBuffer()).byteLength));
    assert.deepEqual(
      origin.seen.filter((r) => r.path.startsWith('/v2/headfirst/')).map((r) => r.method),
      ['GET'],
    );
  });

  test('a manifest asked for by digest is fetched once and then served from the edge', async () => {
    const byTag = manifestFor('/v2/bydigest/manifests/latest', MEDIA.dockerManifest);
    const digestPath = `/v2/bydigest/manifests/${byTag.digest}`;
    origin.handler = (req, res) => {
      res.writeHead(200, { 'Content-Type': byTag.mediaType, 'Docker-Content-Digest': byTag.digest });
      res.end(byTag.bytes);
    };
    const first = await fetch(`${edge.url}${digestPath}`);
    const second = await fetch(`${edge.url}${digestPath}`);
    assert.equal(first.status, 200);
    assert.equal(second.headers.get(EDGE_CACHE), 'memory');
    assert.equal(second.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(origin.count(digestPath), 1);
  });

  test('a manifest whose bytes do not match its digest is neither served nor cached', async () => {
    origin.handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': MEDIA.dockerManifest, 'Docker-Content-Digest': `sha256:${'1'.repeat(64)}` });
      res.end('{"schemaVersion":2}');
    };
    const res = await fetch(`${edge.url}/v2/corrupt/manifests/latest`);
    assert.equal(res.status, 503);
    assert.equal((await errorOf(res)).code, 'UNAVAILABLE');
  });

  test('a 4xx from the origin is passed through as it is and not cached', async () => {
    origin.handler = (_req, res) => serveError(res, 404, 'MANIFEST_UNKNOWN', 'tag unknown: v9');
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${edge.url}/v2/refused/manifests/v9`);
      assert.equal(res.status, 404);
      assert.deepEqual(await errorOf(res), { code: 'MANIFEST_UNKNOWN', message: 'tag unknown: v9', detail: null });
      assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    }
    assert.equal(origin.count('/v2/refused/'), 2);
  });

  test('an unknown package is remembered for a short while, sparing the origin a Nix evaluation per request', async () => {
    origin.handler = (_req, res) => serveError(res, 404, 'MANIFEST_UNKNOWN', 'unknown package: nope', { unknown: ['nope'], notPackages: [], failed: [] });
    const first = await fetch(`${edge.url}/v2/nope/manifests/latest`);
    const second = await fetch(`${edge.url}/v2/nope/manifests/latest`);
    assert.equal(second.status, 404);
    assert.deepEqual(await errorOf(second), await errorOf(first));
    assert.equal(second.headers.get(EDGE_CACHE), 'negative');
    assert.equal(origin.count('/v2/nope/'), 1);
  });

  test('an origin that refuses the edge’s secret is reported as unavailable, not as DENIED to the client', async () => {
    origin.handler = (_req, res) => serveError(res, 403, 'DENIED', 'this origin answers its edge only');
    const res = await fetch(`${edge.url}/v2/denied/manifests/latest`);
    assert.equal(res.status, 503);
    const error = await errorOf(res);
    assert.equal(error.code, 'UNAVAILABLE');
    assert.match(error.message, /ORIGIN_SECRET/);
  });

  test('with nothing cached, an origin 5xx becomes 503 UNAVAILABLE carrying the origin’s message', async () => {
    origin.handler = (_req, res) => serveError(res, 500, 'UNKNOWN', 'nix build failed: exit code 1');
    const res = await fetch(`${edge.url}/v2/broken/manifests/latest`);
    assert.equal(res.status, 503);
    const error = await errorOf(res);
    assert.equal(error.code, 'UNAVAILABLE');
    assert.match(error.message, /nix build failed/);
  });

  test('with nothing cached, an origin slower than ORIGIN_TIMEOUT_MS becomes 503 UNAVAILABLE', async () => {
    origin.handler = () => {
      // Never answers; the server closes the socket when the test's origin stops.
    };
    const res = await fetch(`${edge.url}/v2/hanging/manifests/latest`);
    assert.equal(res.status, 503);
    assert.match((await errorOf(res)).message, /did not answer within 1500 ms/);
  });

  test('the tag list is forwarded to the origin, not cached', async () => {
    origin.handler = (req, res) => {
      const body = JSON.stringify({ name: 'hello', tags: ['latest'] });
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };
    const res = await fetch(`${edge.url}/v2/hello/tags/list`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { name: 'hello', tags: ['latest'] });
    assert.equal(origin.count('/v2/hello/tags/list'), 1);
  });

  test('blobs are forwarded with their range, and a redirect from the origin is passed on', async () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    origin.handler = (req, res) => {
      if (req.headers.range === 'bytes=0-3') {
        res.writeHead(206, { 'Content-Type': MEDIA.octetStream, 'Content-Range': 'bytes 0-3/10', 'Content-Length': 4, 'Docker-Content-Digest': digest });
        res.end('0123');
        return;
      }
      res.writeHead(307, { Location: 'https://storage.example/blob?sig=1', 'Docker-Content-Digest': digest, 'Content-Length': 0 });
      res.end();
    };
    const part = await fetch(`${edge.url}/v2/hello/blobs/${digest}`, { headers: { range: 'bytes=0-3' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), 'bytes 0-3/10');
    assert.equal(await part.text(), '0123');
    const redirect = await fetch(`${edge.url}/v2/hello/blobs/${digest}`, { redirect: 'manual' });
    assert.equal(redirect.status, 307);
    assert.equal(redirect.headers.get('location'), 'https://storage.example/blob?sig=1');
  });
});

describe('the edge when tags are always revalidated (MANIFEST_TAG_TTL=0)', () => {
  const origin = new ScriptedOrigin((req, res) => serveManifest(req, res));
  let edge: RunningTestEdge;

  before(async () => {
    await origin.start();
    edge = await startEdge(origin.url, { bindings: { MANIFEST_TAG_TTL: '0', STALE_TIMEOUT_MS: '300', ORIGIN_TIMEOUT_MS: '3000' } });
  });
  after(async () => {
    await edge?.stop();
    await origin.stop();
  });

  test('a tag moves: the next request after the TTL gets the new manifest', async () => {
    origin.handler = (req, res) => serveManifest(req, res, 1);
    const first = await fetch(`${edge.url}/v2/moving/manifests/latest`);
    origin.handler = (req, res) => serveManifest(req, res, 2);
    const second = await fetch(`${edge.url}/v2/moving/manifests/latest`);
    assert.notEqual(second.headers.get('docker-content-digest'), first.headers.get('docker-content-digest'));
    assert.equal(second.headers.get(EDGE_CACHE), 'miss');
  });

  test('an origin 5xx is covered by the stale copy', async () => {
    origin.handler = (req, res) => serveManifest(req, res);
    const fresh = await fetch(`${edge.url}/v2/flaky/manifests/latest`);
    origin.handler = (_req, res) => serveError(res, 502, 'UNKNOWN', 'bad gateway');
    const stale = await fetch(`${edge.url}/v2/flaky/manifests/latest`);
    assert.equal(stale.status, 200);
    assert.equal(stale.headers.get(EDGE_CACHE), 'stale');
    assert.equal(stale.headers.get('cache-control'), 'no-cache');
    assert.equal(stale.headers.get('docker-content-digest'), fresh.headers.get('docker-content-digest'));
  });

  test('an origin slower than STALE_TIMEOUT_MS is covered by the stale copy, and its late answer still fills the cache', async () => {
    origin.handler = (req, res) => serveManifest(req, res, 1);
    await fetch(`${edge.url}/v2/slow/manifests/latest`);
    let answered = false;
    origin.handler = async (req, res) => {
      await sleep(1000);
      serveManifest(req, res, 2);
      answered = true;
    };
    const stale = await fetch(`${edge.url}/v2/slow/manifests/latest`);
    assert.equal(stale.status, 200);
    assert.equal(stale.headers.get(EDGE_CACHE), 'stale');
    assert.equal(stale.headers.get('docker-content-digest'), manifestFor('/v2/slow/manifests/latest', MEDIA.dockerManifest, 1).digest);
    while (!answered) await sleep(50);
    // The refreshed copy is now the stale stand-in: with the origin failing, version 2 comes back
    // (as soon as the edge has stored what the origin sent; polled, not timed).
    origin.handler = (_req, res) => serveError(res, 503, 'UNAVAILABLE', 'down');
    const refreshed = manifestFor('/v2/slow/manifests/latest', MEDIA.dockerManifest, 2).digest;
    // Its last write, the global tier's, done first: a request begun before that write lands could
    // read the record mid-request, stored after the request's own clock, and rightly call it fresh.
    await inGlobalTier(edge, tagKey('slow'), refreshed);
    let served: string | null = null;
    for (let attempt = 0; attempt < 50 && served !== refreshed; attempt++) {
      const res = await fetch(`${edge.url}/v2/slow/manifests/latest`);
      assert.equal(res.headers.get(EDGE_CACHE), 'stale');
      served = res.headers.get('docker-content-digest');
      if (served !== refreshed) await sleep(50);
    }
    assert.equal(served, refreshed);
  });
});

/**
 * Waits until the global tier (KV, read through miniflare) holds `digest` for
 * a key: edges write it in the background, after their response.
 */
async function inGlobalTier(edge: RunningTestEdge, key: ManifestKey, digest: string): Promise<void> {
  const kv = await edge.miniflare.getKVNamespace('GLOBAL_MANIFESTS');
  for (let attempt = 0; attempt < 100; attempt++) {
    const { metadata } = await kv.getWithMetadata(globalKey(key));
    if ((metadata as { digest?: string } | null)?.digest === digest) return;
    await sleep(50);
  }
  assert.fail(`the global tier never held ${digest} for ${globalKey(key)}`);
}

const tagKey = (name: string): ManifestKey => ({ kind: 'tag', format: 'docker', image: requestedImage(parseImageName(name)), tag: 'latest' });

describe('two data centres sharing one global tier (KV)', () => {
  const origin = new ScriptedOrigin((req, res) => serveManifest(req, res));
  let here: RunningTestEdge;
  let there: RunningTestEdge;
  let alone: RunningTestEdge;
  let kvDir: string;
  // Three seconds: long enough to read a tag in the other edge while fresh, short enough to see it go stale.
  const bindings = { MANIFEST_TAG_TTL: '3', STALE_TIMEOUT_MS: '300', ORIGIN_TIMEOUT_MS: '3000' };

  before(async () => {
    await origin.start();
    kvDir = await mkdtemp(join(tmpdir(), 'edge-kv-'));
    // Each edge has its own Cache API (in memory) and isolate: two data centres. KV is shared.
    here = await startEdge(origin.url, { bindings, kvPersist: kvDir });
    there = await startEdge(origin.url, { bindings, kvPersist: kvDir });
    // The same shared directory but no binding: the edge as it was before the global tier.
    alone = await startEdge(origin.url, { bindings, kvPersist: kvDir, globalStore: false });
  });
  after(async () => {
    await alone?.stop();
    await there?.stop();
    await here?.stop();
    await origin.stop();
    if (kvDir) await rm(kvDir, { recursive: true, force: true });
  });

  test('a manifest asked for in one data centre is answered in the other from the global tier, by tag and by digest, without the origin', async () => {
    origin.handler = (req, res) => serveManifest(req, res);
    const first = await fetch(`${here.url}/v2/everywhere/manifests/latest`);
    assert.equal(first.headers.get(EDGE_CACHE), 'miss');
    const body = await first.text();
    const digest = first.headers.get('docker-content-digest')!;
    await inGlobalTier(here, tagKey('everywhere'), digest);
    const elsewhere = await fetch(`${there.url}/v2/everywhere/manifests/latest`);
    assert.equal(elsewhere.headers.get(EDGE_CACHE), 'global');
    assert.equal(elsewhere.headers.get('docker-content-digest'), digest);
    assert.equal(elsewhere.headers.get('cache-control'), 'public, max-age=3');
    assert.equal(await elsewhere.text(), body);
    // Copied into the other data centre's own layers on the way.
    assert.equal((await fetch(`${there.url}/v2/everywhere/manifests/latest`)).headers.get(EDGE_CACHE), 'memory');
    assert.equal(origin.count('/v2/everywhere/'), 1);

    // A digest only the first data centre has seen (through its tag).
    const pinned = await fetch(`${here.url}/v2/pinned/manifests/latest`);
    const pinnedBody = await pinned.text();
    const pinnedDigest = pinned.headers.get('docker-content-digest')! as Digest;
    await inGlobalTier(here, { kind: 'digest', digest: pinnedDigest }, pinnedDigest);
    const byDigest = await fetch(`${there.url}/v2/pinned/manifests/${pinnedDigest}`);
    assert.equal(byDigest.status, 200);
    assert.equal(byDigest.headers.get(EDGE_CACHE), 'global');
    assert.equal(byDigest.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(await byDigest.text(), pinnedBody);
    assert.equal(origin.count('/v2/pinned/'), 1);
  });

  test('without the KV binding an edge keeps to its own data centre, as before', async () => {
    origin.handler = (req, res) => serveManifest(req, res);
    const first = await fetch(`${here.url}/v2/local-only/manifests/latest`);
    await inGlobalTier(here, tagKey('local-only'), first.headers.get('docker-content-digest')!);
    const res = await fetch(`${alone.url}/v2/local-only/manifests/latest`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get(EDGE_CACHE), 'miss');
    assert.equal(origin.count('/v2/local-only/'), 2);
  });

  test('a tag revalidated in one data centre is fresh in the other, and a moved tag is seen everywhere', async () => {
    origin.handler = (req, res) => serveManifest(req, res, 1);
    const v1 = manifestFor('/v2/moves/manifests/latest', MEDIA.dockerManifest, 1).digest;
    await fetch(`${here.url}/v2/moves/manifests/latest`);
    await inGlobalTier(here, tagKey('moves'), v1);
    assert.equal((await fetch(`${there.url}/v2/moves/manifests/latest`)).headers.get(EDGE_CACHE), 'global');
    // Both copies go stale; the tag moves; one data centre asks the origin...
    await sleep(3_100);
    origin.handler = (req, res) => serveManifest(req, res, 2);
    const moved = await fetch(`${there.url}/v2/moves/manifests/latest`);
    assert.equal(moved.headers.get(EDGE_CACHE), 'miss');
    const v2 = manifestFor('/v2/moves/manifests/latest', MEDIA.dockerManifest, 2).digest;
    assert.equal(moved.headers.get('docker-content-digest'), v2);
    const asked = origin.count('/v2/moves/');
    await inGlobalTier(there, tagKey('moves'), v2);
    // ...and the other, whose own copy is stale, takes the new one from the global tier.
    const seen = await fetch(`${here.url}/v2/moves/manifests/latest`);
    assert.equal(seen.headers.get('docker-content-digest'), v2);
    assert.equal(seen.headers.get(EDGE_CACHE), 'global');
    assert.equal(origin.count('/v2/moves/'), asked);
  });

  test('with the origin failing, a data centre that never saw a tag serves the global tier’s stale copy', async () => {
    origin.handler = (req, res) => serveManifest(req, res);
    const fresh = await fetch(`${here.url}/v2/covered/manifests/latest`);
    const digest = fresh.headers.get('docker-content-digest')!;
    await fresh.arrayBuffer();
    await inGlobalTier(here, tagKey('covered'), digest);
    await sleep(3_100);
    origin.handler = (_req, res) => serveError(res, 503, 'UNAVAILABLE', 'down');
    const stale = await fetch(`${there.url}/v2/covered/manifests/latest`);
    assert.equal(stale.status, 200);
    assert.equal(stale.headers.get(EDGE_CACHE), 'stale');
    assert.equal(stale.headers.get('cache-control'), 'no-cache');
    assert.equal(stale.headers.get('docker-content-digest'), digest);
    const never = await fetch(`${there.url}/v2/never-seen/manifests/latest`);
    assert.equal(never.status, 503);
  });
});

describe('a misconfigured edge', () => {
  let edge: RunningTestEdge;

  before(async () => {
    edge = await startEdge('http://127.0.0.1:9', { bindings: { STORAGE_BACKEND: 'gcs', BUCKET: 'b' } });
  });
  after(async () => {
    await edge?.stop();
  });

  test('answers the pull API with a 500 naming the variable to fix, and still serves its landing page', async () => {
    const res = await fetch(`${edge.url}/v2/hello/manifests/latest`);
    assert.equal(res.status, 500);
    const error = await errorOf(res);
    assert.equal(error.code, 'UNKNOWN');
    assert.match(error.message, /misconfigured: GCS_SIGNING_ACCOUNT/);
    const page = await fetch(`${edge.url}/`);
    assert.equal(page.status, 200);
  });
});
