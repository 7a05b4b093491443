// The tag list of the distribution spec ("Listing Tags"), paginated: tags in
// lexical order; `n` caps a page (and `n=0` MUST give an empty list); `last`
// resumes after that tag; a `Link` header with rel="next" points to the next
// page when there is one. Pure, so the origin and the edge answer alike.
import { RegistryError } from './errors.ts';

/** A page never holds more than this, whatever `n` asks: the answer stays small. */
export const MAX_TAGS_PAGE = 1000;

export interface TagListQuery {
  /** Tags at most on this page; undefined: all (up to MAX_TAGS_PAGE). */
  n?: number;
  /** Only tags lexically after this one. */
  last?: string;
}

export interface TagListPage {
  body: { name: string; tags: string[] };
  /** The query of the next page, when there are more tags. */
  next: TagListQuery | null;
}

/** Reads `n` and `last` from a query string; a malformed `n` is refused as the reference registry does. */
export function parseTagListQuery(search: URLSearchParams): TagListQuery {
  const query: TagListQuery = {};
  const n = search.get('n');
  if (n !== null) {
    if (!/^\d{1,9}$/.test(n)) {
      throw new RegistryError('PAGINATION_NUMBER_INVALID', `invalid number of results requested: n=${JSON.stringify(n.slice(0, 20))} (a whole number is expected)`, { n: n.slice(0, 20) });
    }
    query.n = Number(n);
  }
  const last = search.get('last');
  if (last !== null) query.last = last.slice(0, 256);
  return query;
}

export function tagListPage(name: string, tags: readonly string[], query: TagListQuery): TagListPage {
  // Code-unit order, as the reference registry sorts: the same on every machine and locale.
  const sorted = [...new Set(tags)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const after = query.last === undefined ? sorted : sorted.filter((tag) => tag > query.last!);
  const limit = Math.min(query.n ?? MAX_TAGS_PAGE, MAX_TAGS_PAGE);
  const page = after.slice(0, limit);
  const more = after.length > page.length && page.length > 0;
  return { body: { name, tags: page }, next: more ? { n: limit, last: page[page.length - 1]! } : null };
}

/** The `Link` header value for the next page, relative to the registry's own path. */
export function nextPageLink(name: string, next: TagListQuery): string {
  const params = new URLSearchParams();
  if (next.n !== undefined) params.set('n', String(next.n));
  if (next.last !== undefined) params.set('last', next.last);
  return `</v2/${name}/tags/list?${params.toString()}>; rel="next"`;
}
