// Reading a small request body (the page's build requests, the edge's hit
// reports): refused past a size, in the registry's error format, without
// reading the rest.
import type { Request } from 'express';
import { errors } from '../../shared/errors.ts';

/** The body as text, refused past `max` bytes without reading the rest. */
export async function readBody(req: Request, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw errors.queryInvalid(`the request body is larger than ${max} bytes`, { max });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The body as JSON; `shape` says in the error what was expected. */
export async function readJsonBody(req: Request, max: number, shape: string): Promise<unknown> {
  const text = await readBody(req, max);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw errors.queryInvalid(`the body is not JSON: ${shape}`);
  }
}
