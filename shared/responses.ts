// What the origin and the edge answer alike, as plain values (web standards
// only): the headers every answer of the pull API carries, the cache
// lifetimes, and the answer for an error. The origin writes these into
// express, the edge into a Response; neither spells them out itself.
import { errorBody, type RegistryError } from './errors.ts';
import { MEDIA } from './media-types.ts';

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version';
export const API_VERSION = 'registry/2.0';

/** Headers every answer under /v2/ carries (clients check the version on the ping). */
export const API_HEADERS: Readonly<Record<string, string>> = { [API_VERSION_HEADER]: API_VERSION };

export const CACHE_CONTROL = {
  /** What a digest names never changes: a year, and no revalidation. */
  immutable: 'public, max-age=31536000, immutable',
} as const;

/** An answer whose body is known whole: status, headers (Content-Length included) and bytes. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** The registry's answer for an error: the spec's JSON body, with the headers the error carries. */
export function errorAnswer(err: RegistryError): Answer {
  const body = new TextEncoder().encode(JSON.stringify(errorBody(err)));
  return {
    status: err.status,
    headers: { ...API_HEADERS, 'Content-Type': MEDIA.json, ...err.headers, 'Content-Length': String(body.byteLength) },
    body,
  };
}
