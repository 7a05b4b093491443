// Parses what `nix-store --dump-db PATHS...` prints: for each path, the
// lines path, narHash, narSize, deriver (may be empty), reference count and
// the references. It is Nix's stable validity-registration format, which
// every Nix since 1.x prints the same way, unlike `nix path-info --json`.
import type { StorePathInfo } from '../layers/graph.ts';

export function parseDumpDb(text: string): StorePathInfo[] {
  const lines = text.split('\n');
  const out: StorePathInfo[] = [];
  let i = 0;
  const next = (what: string): string => {
    const line = lines[i++];
    if (line === undefined) throw new Error(`nix-store --dump-db output ended early, expected ${what}`);
    return line;
  };
  while (i < lines.length) {
    if (lines[i] === '' && i === lines.length - 1) break;
    const path = next('a store path');
    if (!path.startsWith('/')) throw new Error(`unexpected line in nix-store --dump-db output: ${JSON.stringify(path)}`);
    next('a hash');
    const narSize = Number(next('a size'));
    next('a deriver');
    const count = Number(next('a reference count'));
    if (!Number.isSafeInteger(narSize) || !Number.isSafeInteger(count)) {
      throw new Error(`malformed nix-store --dump-db record for ${path}`);
    }
    const references: string[] = [];
    for (let r = 0; r < count; r++) references.push(next('a reference'));
    out.push({ path, narSize, references });
  }
  return out;
}
