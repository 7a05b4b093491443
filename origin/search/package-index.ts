// Searching a package set's index (made by origin/nix/index.nix) in memory,
// and telling from it, without Nix, which requested names cannot be
// packages. Pure: the index comes in as data.
import type { RawPackageIndex } from '../nix/nix.ts';

export interface IndexedPackage {
  attrPath: string;
  name: string;
  version: string;
  description: string;
}

export interface SearchPage {
  /** Every match, of which `packages` is the page asked for. */
  total: number;
  packages: IndexedPackage[];
}

/** Descriptions longer than this are cut: the page shows one line, and 100k of them are kept in memory. */
const MAX_DESCRIPTION = 300;

interface Row {
  pkg: IndexedPackage;
  attr: string;
  /** The last component of the attribute path: `requests` of `python3Packages.requests`. */
  leaf: string;
  name: string;
  text: string;
}

export class PackageIndex {
  readonly size: number;
  private readonly rows: Row[];
  /**
   * Every row's text, one row per line, so one native indexOf scan finds the
   * rows holding a word (a loop over 100k rows costs ten times more), and
   * where each row starts in it.
   */
  private readonly haystack: string;
  private readonly starts: Int32Array;
  /** Lower-cased set path → lower-cased names in it ("" is the top level). */
  private readonly sets = new Map<string, Set<string>>();

  constructor(raw: RawPackageIndex) {
    this.rows = raw.packages
      .map((p) => {
        const pkg = { attrPath: p.attrPath, name: p.name, version: p.version, description: p.description.slice(0, MAX_DESCRIPTION) };
        const attr = p.attrPath.toLowerCase();
        const text = `${attr} ${p.name.toLowerCase()} ${pkg.description.toLowerCase()}`.replace(/\s+/g, ' ');
        return { pkg, attr, leaf: attr.slice(attr.lastIndexOf('.') + 1), name: p.name.toLowerCase(), text };
      })
      .sort((a, b) => (a.attr < b.attr ? -1 : a.attr > b.attr ? 1 : 0));
    this.size = this.rows.length;
    this.starts = new Int32Array(this.rows.length);
    let offset = 0;
    this.rows.forEach((row, i) => {
      this.starts[i] = offset;
      offset += row.text.length + 1;
    });
    this.haystack = this.rows.map((r) => r.text).join('\n');
    for (const set of raw.sets) this.sets.set(set.path.toLowerCase(), new Set(set.names.map((n) => n.toLowerCase())));
  }

  /**
   * Packages matching every word of `query` (in the attribute path, name or
   * description, ignoring case), best first: the exact attribute, then the
   * exact name, then prefixes, then substrings, then descriptions. An empty
   * query lists everything in attribute order.
   */
  search(query: string, limit: number, offset: number): SearchPage {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (words.length === 0) return { total: this.rows.length, packages: this.rows.slice(offset, offset + limit).map((r) => r.pkg) };
    // The longest word is likely the rarest: only the rows holding it are scored.
    const driver = words.reduce((a, b) => (b.length > a.length ? b : a));
    // (score, attribute length) packed in one number per match; matches come in attribute order,
    // so their position breaks ties alphabetically.
    const matches: number[] = [];
    const keys: number[] = [];
    for (const i of this.rowsHolding(driver)) {
      const row = this.rows[i]!;
      let score = 0;
      for (const word of words) {
        const s = wordScore(row, word);
        if (s < 0) {
          score = -1;
          break;
        }
        score += s;
      }
      if (score < 0) continue;
      keys.push(score * 4096 + Math.min(row.attr.length, 4095));
      matches.push(i);
    }
    const order = matches.map((_, k) => k).sort((a, b) => keys[a]! - keys[b]! || a - b);
    return { total: matches.length, packages: order.slice(offset, offset + limit).map((k) => this.rows[matches[k]!]!.pkg) };
  }

  /** The indices of the rows whose text holds `word`, in attribute order. */
  private rowsHolding(word: string): number[] {
    const found: number[] = [];
    let from = 0;
    for (;;) {
      const at = this.haystack.indexOf(word, from);
      if (at === -1) return found;
      const i = this.rowAt(at);
      found.push(i);
      from = i + 1 < this.starts.length ? this.starts[i + 1]! : this.haystack.length;
    }
  }

  /** The row whose text holds haystack offset `at` (binary search over the row starts). */
  private rowAt(at: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * The names (attribute paths, as image.nix reads them) that are certainly
   * not in the package set: their first component is no top-level attribute,
   * or they name a child a walked set does not have. Names under a set the
   * index did not walk are left for Nix to judge.
   */
  unknown(names: readonly string[]): string[] {
    return names.filter((name) => {
      const parts = name.toLowerCase().split('.');
      let path = '';
      for (const part of parts) {
        const names = this.sets.get(path);
        if (names === undefined) return false;
        if (!names.has(part)) return true;
        path = path === '' ? part : `${path}.${part}`;
      }
      return false;
    });
  }
}

/** How well one query word matches a package: lower is better, -1 is no match. */
function wordScore(row: Row, word: string): number {
  // Most rows match nothing: one scan of the joined text settles them.
  if (!row.text.includes(word)) return -1;
  if (row.attr === word || row.leaf === word) return 0;
  if (row.name === word) return 1;
  if (row.leaf.startsWith(word) || row.name.startsWith(word)) return 2;
  if (row.attr.includes(word) || row.name.includes(word)) return 3;
  return 4;
}
