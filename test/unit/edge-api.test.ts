// The page's API through the real Worker (workerd) against a scripted origin:
// a small HTTP server whose answers each test sets. Shows that the edge
// passes a build's event stream on as it arrives (nothing buffered), caches
// searches under one key per search, forwards build requests with the
// secret, and refuses bad input without asking the origin. No Nix here; the
// real origin is in test/integration/page-api.test.ts and test/e2e/page.test.ts.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { ScriptedOrigin } from '../support/scripted-origin.ts';
import { startEdge, type RunningTestEdge } from '../support/edge.ts';
import { CLIENT_ADDRESS_HEADER, ORIGIN_SECRET_HEADER } from '../../shared/headers.ts';
import { API_LIMITS } from '../../shared/api.ts';

const SECRET = 'api-secret';


function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

async function errorOf(res: Response): Promise<{ code: string; message: string; detail: unknown }> {
  const body = (await res.json()) as { errors: { code: string; message: string; detail: unknown }[] };
  assert.equal(body.errors.length, 1);
  return body.errors[0]!;
}

/** Reads a stream until `text` has arrived (or it ends); returns everything read so far. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, sofar: { text: string }, text: string): Promise<string> {
  const decoder = new TextDecoder();
  while (!sofar.text.includes(text)) {
    const { done, value } = await reader.read();
    if (done) break;
    sofar.text += decoder.decode(value, { stream: true });
  }
  return sofar.text;
}

describe('the page API at the edge', () => {
  const origin = new ScriptedOrigin((_req, res) => json(res, 200, { query: {}, total: 0, packages: [] }));
  let edge: RunningTestEdge;

  before(async () => {
    await origin.start();
    edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET, ORIGIN_TIMEOUT_MS: '2000' } });
  });
  after(async () => {
    await edge?.stop();
    await origin.stop();
  });

  test('a build’s event stream reaches the client event by event, before the origin has finished it', { timeout: 30_000 }, async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    origin.handler = async (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store' });
      res.write('id: 1\nevent: step\ndata: {"type":"step","step":"build"}\n\n');
      // Nothing more until the client proves it has the first event: a buffering edge would hold it back.
      await released;
      res.write('id: 2\nevent: done\ndata: {"name":"hello","tag":"latest","summary":null}\n\n');
      res.end();
    };
    const res = await fetch(`${edge.url}/api/builds/hello:latest/events`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const reader = res.body!.getReader();
    const sofar = { text: '' };
    const first = await Promise.race([
      readUntil(reader, sofar, 'event: step'),
      new Promise<string>((_, reject) => setTimeout(() => reject(new Error('the first event did not arrive while the origin held the stream open')), 10_000)),
    ]);
    assert.match(first, /event: step/);
    assert.doesNotMatch(first, /event: done/);
    release();
    const all = await readUntil(reader, sofar, 'event: done');
    assert.match(all, /event: done/);
    const seen = origin.seen.find((r) => r.path === '/api/builds/hello:latest/events')!;
    assert.equal(seen.headers[ORIGIN_SECRET_HEADER.toLowerCase()], SECRET);
  });

  test('equal searches share one origin request, whatever the order of their parameters', async () => {
    origin.handler = (_req, res) => json(res, 200, { query: { q: 'git' }, total: 1, packages: [{ attrPath: 'git', name: 'git', version: '2', description: 'vcs' }] });
    const first = await fetch(`${edge.url}/api/search?q=git&limit=5`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-nixery-edge-cache'), 'origin');
    const second = await fetch(`${edge.url}/api/search?limit=5&q=git`);
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('x-nixery-edge-cache'), 'cache');
    assert.deepEqual(await second.json(), await first.json());
    assert.equal(origin.count('/api/search'), 1);
    assert.equal(origin.seen.find((r) => r.path.startsWith('/api/search'))!.path, '/api/search?q=git&tag=latest&limit=5&offset=0');
  });

  test('the page’s GET form renders the results of the same cached search, escaped', async () => {
    origin.handler = (_req, res) => json(res, 200, { query: {}, total: 1, packages: [{ attrPath: 'evil', name: 'evil', version: '1', description: '<script>alert(1)</script>' }] });
    const res = await fetch(`${edge.url}/?q=evil`);
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(html, /<code class="attr">evil<\/code>/);
    assert.match(html, /&#60;script&#62;alert\(1\)&#60;\/script&#62;/);
    assert.doesNotMatch(html, /<script>alert/);
    await fetch(`${edge.url}/?q=evil`);
    await fetch(`${edge.url}/api/search?q=evil`);
    assert.equal(origin.count('q=evil'), 1);
  });

  test('a build request is forwarded with its body and the secret; the origin’s answer comes back', async () => {
    origin.handler = (_req, res) => json(res, 202, { name: 'hello/jq', tag: 'latest', image: 'amd64/hello/jq', events: '/api/builds/hello/jq:latest/events' });
    const res = await fetch(`${edge.url}/api/builds`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ packages: ['hello', 'jq'] }) });
    assert.equal(res.status, 202);
    assert.equal(((await res.json()) as { name: string }).name, 'hello/jq');
    const seen = origin.seen.filter((r) => r.path === '/api/builds').at(-1)!;
    assert.equal(seen.method, 'POST');
    assert.deepEqual(JSON.parse(seen.body), { packages: ['hello', 'jq'] });
    assert.equal(seen.headers[ORIGIN_SECRET_HEADER.toLowerCase()], SECRET);
  });

  test('the origin’s refusal of a build (unknown package) reaches the client as it is', async () => {
    origin.handler = (_req, res) => json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'unknown package: nope', detail: { unknown: ['nope'] } }] });
    const res = await fetch(`${edge.url}/api/builds`, { method: 'POST', body: JSON.stringify({ packages: ['nope'] }) });
    assert.equal(res.status, 404);
    const error = await errorOf(res);
    assert.equal(error.code, 'MANIFEST_UNKNOWN');
    assert.match(error.message, /nope/);
  });

  test('bad input is refused at the edge, in the registry error format, and never reaches the origin', async () => {
    const before = origin.seen.length;
    const huge = await fetch(`${edge.url}/api/search?q=${'a'.repeat(5000)}`);
    assert.ok(huge.status === 400 || huge.status === 414, String(huge.status));
    if (huge.status === 400) assert.equal((await errorOf(huge)).code, 'QUERY_INVALID');
    const limit = await fetch(`${edge.url}/api/search?q=a&limit=100000`);
    assert.equal(limit.status, 400);
    assert.match((await errorOf(limit)).message, /limit/);
    const many = await fetch(`${edge.url}/api/builds`, { method: 'POST', body: JSON.stringify({ packages: Array.from({ length: API_LIMITS.maxPackages + 1 }, (_, i) => `p${i}`) }) });
    assert.equal(many.status, 400);
    assert.match((await errorOf(many)).message, /at most 20 packages/);
    const badName = await fetch(`${edge.url}/api/builds`, { method: 'POST', body: JSON.stringify({ packages: ['../etc'] }) });
    assert.equal(badName.status, 400);
    assert.equal((await errorOf(badName)).code, 'NAME_INVALID');
    const notJson = await fetch(`${edge.url}/api/builds`, { method: 'POST', body: '{packages' });
    assert.equal(notJson.status, 400);
    const big = await fetch(`${edge.url}/api/builds`, { method: 'POST', body: JSON.stringify({ packages: ['a'], pad: 'x'.repeat(API_LIMITS.maxBodyBytes) }) });
    assert.equal(big.status, 400);
    assert.match((await errorOf(big)).message, /larger than/);
    const badEvents = await fetch(`${edge.url}/api/builds/UPPER:latest/events`);
    assert.equal(badEvents.status, 400);
    const unknownPath = await fetch(`${edge.url}/api/nothing`);
    assert.equal(unknownPath.status, 404);
    const wrongMethod = await fetch(`${edge.url}/api/search`, { method: 'DELETE' });
    assert.equal(wrongMethod.status, 405);
    assert.equal(origin.seen.length, before);
  });

  test('the page and its script are served by the edge itself; the script is immutable at its versioned URL', async () => {
    const before = origin.seen.length;
    const page = await fetch(`${edge.url}/`);
    assert.equal(page.status, 200);
    const html = await page.text();
    const src = /<script type="module" src="([^"]+)"><\/script>/.exec(html)?.[1];
    assert.ok(src, 'the page loads its script');
    const script = await fetch(`${edge.url}${src}`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(script.headers.get('cache-control') ?? '', /immutable/);
    assert.match(await script.text(), /EventSource/);
    assert.equal(origin.seen.length, before, 'neither asked the origin anything');
  });
});

describe('the page API at the edge, under a rate limit of 2 origin requests a minute per client', () => {
  const origin = new ScriptedOrigin((_req, res) => json(res, 200, { query: {}, total: 0, packages: [] }));
  let edge: RunningTestEdge;

  before(async () => {
    await origin.start();
    edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET }, ratelimits: { ORIGIN_RATE_LIMITER: { simple: { limit: 2, period: 60 } } } });
  });
  after(async () => {
    await edge?.stop();
    await origin.stop();
  });

  const as = (client: string, init: RequestInit = {}): RequestInit => ({ ...init, headers: { 'CF-Connecting-IP': client, ...(init.headers as Record<string, string> | undefined) } });

  test('searches that miss, builds and event streams count; a limited client gets 429 with Retry-After, its cached searches still answer, others are not limited', { timeout: 30_000 }, async () => {
    const a = '192.0.2.10';
    assert.equal((await fetch(`${edge.url}/api/search?q=one`, as(a))).status, 200);
    assert.equal((await fetch(`${edge.url}/api/search?q=two`, as(a))).status, 200);
    const asked = origin.seen.length;
    for (const [what, res] of [
      ['a search that misses', await fetch(`${edge.url}/api/search?q=three`, as(a))],
      ['a build', await fetch(`${edge.url}/api/builds`, as(a, { method: 'POST', body: JSON.stringify({ packages: ['hello'] }) }))],
      ['an event stream', await fetch(`${edge.url}/api/builds/hello:latest/events`, as(a))],
      ['the page with a search that misses', await fetch(`${edge.url}/?q=four`, as(a))],
    ] as const) {
      assert.equal(res.status, 429, what);
      if (!what.startsWith('the page')) {
        assert.equal(res.headers.get('retry-after'), '60', what);
        assert.equal((await errorOf(res)).code, 'TOOMANYREQUESTS', what);
      } else {
        await res.arrayBuffer();
      }
    }
    assert.equal(origin.seen.length, asked, 'nothing of the limited client reached the origin');
    const cached = await fetch(`${edge.url}/api/search?q=one`, as(a));
    assert.equal(cached.status, 200);
    assert.equal(cached.headers.get('x-nixery-edge-cache'), 'cache');
    assert.equal((await fetch(`${edge.url}/api/search?q=three`, as('192.0.2.11'))).status, 200, 'another client');
  });

  test('every API request to the origin carries the client’s address beside the secret', { timeout: 30_000 }, async () => {
    await fetch(`${edge.url}/api/builds`, as('198.51.100.7', { method: 'POST', body: JSON.stringify({ packages: ['hello'] }) }));
    await fetch(`${edge.url}/api/search?q=address`, as('198.51.100.8'));
    const build = origin.seen.filter((r) => r.path === '/api/builds').at(-1)!;
    const search = origin.seen.filter((r) => r.path.startsWith('/api/search?q=address')).at(-1)!;
    assert.equal(build.headers[CLIENT_ADDRESS_HEADER.toLowerCase()], '198.51.100.7');
    assert.equal(search.headers[CLIENT_ADDRESS_HEADER.toLowerCase()], '198.51.100.8');
    assert.equal(build.headers[ORIGIN_SECRET_HEADER.toLowerCase()], SECRET);
  });
});
