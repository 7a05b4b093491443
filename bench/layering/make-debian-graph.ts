// Builds the benchmark's package graph from Debian's own package lists, so the
// layering strategies are judged on a real dependency graph of tens of
// thousands of packages instead of the handful the repository bundles.
//
// Reads apt's lists (/var/lib/apt/lists/*_Packages*; run `apt-get update`
// first if there are none), keeps each package's name, Installed-Size and
// Depends/Pre-Depends, and writes bench/layering/debian-graph.json.gz:
//   { source, names: string[], sizes: number[] (bytes), deps: number[][] (indices into names) }
//
// Run: node_modules/.bin/node bench/layering/make-debian-graph.ts [lists-dir]
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync, constants as zlib } from 'node:zlib';

interface Stanza {
  name: string;
  size: number;
  depends: string;
}

const listsDir = process.argv[2] ?? '/var/lib/apt/lists';
const out = new URL('./debian-graph.json.gz', import.meta.url);

function readList(file: string): string {
  if (file.endsWith('.gz')) return gunzipSync(readFileSync(file)).toString('utf8');
  if (/\.(lz4|xz|bz2|zst)$/.test(file)) {
    // apt compresses its lists with whatever it was configured for; its own
    // helper undoes every one of them, so no decompressor is needed here.
    return execFileSync('/usr/lib/apt/apt-helper', ['cat-file', file], { maxBuffer: 1 << 30 }).toString('utf8');
  }
  return readFileSync(file, 'utf8');
}

function parseStanzas(text: string): Stanza[] {
  const stanzas: Stanza[] = [];
  for (const block of text.split(/\n\n+/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const line of block.split('\n')) {
      if (line.startsWith(' ') || line.startsWith('\t')) {
        if (last) fields.set(last, `${fields.get(last) ?? ''} ${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      last = line.slice(0, colon);
      fields.set(last, line.slice(colon + 1).trim());
    }
    const name = fields.get('Package');
    if (!name) continue;
    const kib = Number(fields.get('Installed-Size') ?? '0');
    const depends = [fields.get('Pre-Depends'), fields.get('Depends')].filter(Boolean).join(', ');
    stanzas.push({ name, size: Number.isFinite(kib) ? kib * 1024 : 0, depends });
  }
  return stanzas;
}

/** "foo:any (>= 1.2) [amd64] <!nocheck>" → "foo" */
function bareName(atom: string): string {
  return atom.replace(/\(.*?\)|\[.*?\]|<.*?>/g, '').trim().replace(/:[a-z0-9-]+$/, '');
}

function main(): void {
  const files = readdirSync(listsDir)
    .filter((f) => /_Packages(\.(gz|lz4|xz|bz2|zst))?$/.test(f))
    .map((f) => join(listsDir, f))
    // The biggest list is the release itself; updates and security lists
    // repeat some of its packages, and the first occurrence wins, so the
    // graph is the release's, with packages only the others have added.
    .sort((a, b) => statSync(b).size - statSync(a).size || (a < b ? -1 : 1));
  if (files.length === 0) throw new Error(`no *_Packages lists in ${listsDir}: run apt-get update first`);

  const byName = new Map<string, Stanza>();
  const providesText = new Map<string, string>();
  for (const file of files) {
    const text = readList(file);
    for (const s of parseStanzas(text)) if (!byName.has(s.name)) byName.set(s.name, s);
    // Provides is read in a second pass over the same text to keep Stanza small.
    for (const block of text.split(/\n\n+/)) {
      const name = /^Package: (.+)$/m.exec(block)?.[1];
      const provides = /^Provides: (.+)$/m.exec(block)?.[1];
      if (name && provides && !providesText.has(name)) providesText.set(name, provides);
    }
  }

  const names = [...byName.keys()].sort();
  const index = new Map(names.map((n, i) => [n, i]));
  // Virtual package → providers; the alphabetically first provider stands
  // in for it, which is arbitrary but the same on every run.
  const providers = new Map<string, string[]>();
  for (const [name, text] of providesText) {
    for (const atom of text.split(',')) {
      const virtual = bareName(atom);
      if (!virtual) continue;
      const list = providers.get(virtual) ?? [];
      list.push(name);
      providers.set(virtual, list);
    }
  }
  const resolve = (name: string): number | undefined => {
    const real = index.get(name);
    if (real !== undefined) return real;
    const provider = providers.get(name)?.sort()[0];
    return provider === undefined ? undefined : index.get(provider);
  };

  const sizes: number[] = [];
  const deps: number[][] = [];
  let unresolved = 0;
  for (const name of names) {
    const s = byName.get(name)!;
    const self = index.get(name)!;
    const mine = new Set<number>();
    for (const clause of s.depends.split(',')) {
      if (!clause.trim()) continue;
      let found: number | undefined;
      for (const alt of clause.split('|')) {
        found = resolve(bareName(alt));
        if (found !== undefined) break;
      }
      if (found === undefined) unresolved++;
      else if (found !== self) mine.add(found);
    }
    sizes.push(s.size);
    deps.push([...mine].sort((a, b) => a - b));
  }

  const json = JSON.stringify({ source: files.map((f) => f.slice(f.lastIndexOf('/') + 1)), names, sizes, deps });
  const gz = gzipSync(json, { level: zlib.Z_BEST_COMPRESSION });
  writeFileSync(out, gz);
  const edges = deps.reduce((n, d) => n + d.length, 0);
  console.log(`${names.length} packages, ${edges} dependency edges, ${unresolved} unresolved clauses → ${out.pathname} (${gz.length} bytes)`);
}

main();
