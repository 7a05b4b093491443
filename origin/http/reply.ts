// What the origin's handlers return, and the one place that writes it.
// Handlers answer every request as a GET; `sendReply` writes the status and
// headers and, for a HEAD, leaves the body out. A streamed body (a blob) is
// opened only when it is sent, so a HEAD never reads one.
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Response } from 'express';
import { API_HEADERS } from '../../shared/responses.ts';

/** A body read from storage as it is sent. */
export interface StreamedBody {
  open(): Promise<Readable>;
}

export interface Reply {
  status: number;
  headers: Record<string, string>;
  /** Bytes (their length is the Content-Length), a stream (the headers state its length), or none. */
  body: Uint8Array | StreamedBody | null;
}

/** A redirect is an answer like any other: a status, a Location, no body. */
export function redirect(location: string, headers: Record<string, string>): Reply {
  return { status: 307, headers: { Location: location, 'Content-Length': '0', ...headers }, body: null };
}

export async function sendReply(res: Response, reply: Reply): Promise<void> {
  const head = res.req.method === 'HEAD';
  const { body } = reply;
  // Opened before the headers go out, so a failure to open is still answered as an error.
  const stream = !head && body !== null && !(body instanceof Uint8Array) ? await body.open() : null;
  res.status(reply.status).set({ ...API_HEADERS, ...reply.headers });
  if (body instanceof Uint8Array) res.set('Content-Length', String(body.byteLength));
  if (stream !== null) {
    await pipeline(stream, res);
    return;
  }
  res.end(head || !(body instanceof Uint8Array) ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
}
