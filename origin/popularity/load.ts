// Loads popularity data (NIX_POPULARITY_URL, Nixery's format) once at
// start-up. A copy is kept in storage, so an origin that restarts while
// the URL is unreachable still layers images the same way; with neither,
// start-up fails rather than silently layering differently.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Storage } from '../storage/storage.ts';
import type { Popularity } from '../layers/graph.ts';
import { parsePopularity } from '../layers/popularity.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';

async function fetchText(url: string): Promise<string> {
  if (url.startsWith('file:')) return readFile(fileURLToPath(url), 'utf8');
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.text();
}

export async function loadPopularity(url: string, storage: Storage, log: Logger): Promise<Popularity> {
  const key = STORAGE_KEYS.popularity(createHash('sha256').update(url).digest('hex'));
  let text: string;
  try {
    text = await fetchText(url);
    parsePopularity(text);
    await storage.put(key, new TextEncoder().encode(text), 'application/json');
  } catch (err) {
    const cached = await storage.get(key);
    if (!cached) throw new Error(`NIX_POPULARITY_URL: cannot load ${url}: ${(err as Error).message}`);
    log.warn({ err, url }, 'popularity data unreachable; using the copy kept in storage');
    text = new TextDecoder().decode(cached);
  }
  const popularity = parsePopularity(text);
  log.info({ url, paths: popularity.size }, 'popularity data loaded');
  return popularity;
}
