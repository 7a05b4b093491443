// The shared response core (shared/responses.ts) and the one place on each
// side where a HEAD loses its body: origin/http/reply.ts and edge/responses.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import express from 'express';
import { errors } from '../../shared/errors.ts';
import { errorAnswer, API_VERSION, API_VERSION_HEADER } from '../../shared/responses.ts';
import { sendReply, redirect, type Reply } from '../../origin/http/reply.ts';
import { withoutBody } from '../../edge/responses.ts';

test('an error answers with the registry JSON, the API version, and the headers the error carries', () => {
  const answer = errorAnswer(errors.rangeNotSatisfiable(10));
  assert.equal(answer.status, 416);
  assert.equal(answer.headers['Content-Range'], 'bytes */10');
  assert.equal(answer.headers[API_VERSION_HEADER], API_VERSION);
  assert.equal(answer.headers['Content-Type'], 'application/json');
  assert.equal(answer.headers['Content-Length'], String(answer.body.byteLength));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(answer.body)), {
    errors: [{ code: 'UNKNOWN', message: 'requested range not satisfiable', detail: { size: 10 } }],
  });
  const plain = errorAnswer(errors.noCatalog());
  assert.equal(plain.status, 405);
  assert.equal(plain.headers['Content-Range'], undefined);
});

test('a client error (4xx) carries no stack, a server error (5xx) does, and the stack limit is left as it was', () => {
  const before = Error.stackTraceLimit;
  const refusal = errors.tooManyRequests('busy', 5);
  assert.equal(refusal.status, 429);
  assert.equal(refusal.stack, 'RegistryError: busy', 'no frames were captured');
  assert.equal(errors.notFound('/nosuch').stack?.includes('\n    at '), false);
  const internal = errors.internal('disk on fire');
  assert.equal(internal.status, 500);
  assert.match(internal.stack ?? '', /\n    at .*responses\.test\.ts/, 'a fault keeps where it was made');
  assert.equal(Error.stackTraceLimit, before);
  assert.match(new Error('plain').stack ?? '', /\n    at /, 'other errors keep their stacks');
});

/** Serves one reply at /, counting how often a streamed body was opened. */
async function serve(reply: () => Reply): Promise<{ url: string; close: () => Promise<void> }> {
  const app = express();
  app.all('/', async (_req, res, next) => {
    try {
      await sendReply(res, reply());
    } catch (err) {
      next(err);
    }
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test('the origin answers a HEAD with the GET’s headers, and never opens a streamed body for it', async () => {
  let opened = 0;
  const server = await serve(() => ({
    status: 200,
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': '5' },
    body: { open: async () => (opened++, Readable.from([Buffer.from('hello')])) },
  }));
  try {
    const get = await fetch(server.url);
    assert.equal(await get.text(), 'hello');
    assert.equal(opened, 1);
    const head = await fetch(server.url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '5');
    assert.equal(head.headers.get(API_VERSION_HEADER), API_VERSION);
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    assert.equal(opened, 1, 'HEAD opened no stream');
  } finally {
    await server.close();
  }
});

test('the origin states the length of a body of bytes, for GET and HEAD alike; a redirect is a reply too', async () => {
  const bytes = await serve(() => ({ status: 200, headers: { 'Content-Type': 'application/json' }, body: new TextEncoder().encode('{"a":1}') }));
  const moved = await serve(() => redirect('https://example.invalid/blob', { 'Cache-Control': 'private, max-age=60' }));
  try {
    const get = await fetch(bytes.url);
    assert.equal(await get.text(), '{"a":1}');
    const head = await fetch(bytes.url, { method: 'HEAD' });
    assert.equal(head.headers.get('content-length'), '7');
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    const redirected = await fetch(moved.url, { redirect: 'manual' });
    assert.equal(redirected.status, 307);
    assert.equal(redirected.headers.get('location'), 'https://example.invalid/blob');
    assert.equal(redirected.headers.get('content-length'), '0');
  } finally {
    await bytes.close();
    await moved.close();
  }
});

test('the edge answers a HEAD with the GET’s status and headers and no body', async () => {
  const get = new Response('{"a":1}', { status: 404, headers: { 'Content-Type': 'application/json', 'Content-Length': '7' } });
  const head = withoutBody(get);
  assert.equal(head.status, 404);
  assert.equal(head.headers.get('content-length'), '7');
  assert.equal(head.headers.get('content-type'), 'application/json');
  assert.equal(head.body, null);
});
