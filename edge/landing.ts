// The page at `/` and its script. The HTML is rendered here (page/html.ts);
// with `?q=` it holds the search's results, read through the same cached
// search as /api/search, so the search works as a plain GET form without
// JavaScript.
import { parseSearchQuery, type SearchQuery } from '../shared/api.ts';
import { RegistryError } from '../shared/errors.ts';
import { REQUEST_ID_HEADER } from '../shared/headers.ts';
import { search, type ApiServices } from './api.ts';
import type { WaitUntil } from './manifests.ts';
import { parseErrorBody } from './origin.ts';
import { CLIENT_SCRIPT, CLIENT_SCRIPT_VERSION } from './page/client.ts';
import { renderPage, type SearchResults } from './page/html.ts';
import { respond, type RequestInfo } from './responses.ts';

/** `services` is asked for only when there is a search: the page itself needs no configuration. */
export async function landingPage(info: RequestInfo, services: () => ApiServices, ctx: WaitUntil): Promise<Response> {
  let query: SearchQuery | null = null;
  let results: SearchResults | null = null;
  let error: string | null = null;
  let status = 200;
  if (info.url.searchParams.has('q')) {
    try {
      query = parseSearchQuery(info.url.searchParams);
      const found = await search(query, info, services(), ctx);
      if (found.answer === null) results = JSON.parse(new TextDecoder().decode(found.body)) as SearchResults;
      else {
        status = found.answer.status;
        error = parseErrorBody(found.answer)?.errors[0]?.message ?? `the registry answered ${found.status}`;
      }
    } catch (err) {
      // The page still says what this is and how to pull when the search cannot answer.
      status = err instanceof RegistryError ? err.status : 500;
      error = `Search failed: ${err instanceof RegistryError ? err.message : 'internal error'}`;
    }
  }
  // The host the client used is the one its `docker pull` must name.
  const html = renderPage({ host: info.url.host, insecure: info.url.protocol === 'http:', query, results, error });
  const headers = new Headers({
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': status !== 200 ? 'no-store' : query === null ? 'public, max-age=300' : 'public, max-age=60',
    'Content-Security-Policy': "default-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
    [REQUEST_ID_HEADER]: info.requestId,
  });
  return respond(status, headers, html);
}

/** The page's script; immutable when asked for by its versioned URL. */
export function pageScript(info: RequestInfo): Response {
  const current = info.url.searchParams.get('v') === CLIENT_SCRIPT_VERSION;
  const headers = new Headers({
    'Content-Type': 'text/javascript; charset=utf-8',
    'Cache-Control': current ? 'public, max-age=31536000, immutable' : 'public, max-age=300',
    'X-Content-Type-Options': 'nosniff',
    [REQUEST_ID_HEADER]: info.requestId,
  });
  return respond(200, headers, CLIENT_SCRIPT);
}
