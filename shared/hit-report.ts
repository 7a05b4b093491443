// The edge's report of manifest hits to the origin (docs/operations.md,
// "Last use"): which manifests the edge answered from its own tiers, which
// the origin never saw. One POST of `{"digests": [...]}` to HIT_REPORT_PATH,
// behind the edge's secret; the origin answers `{"unknown": [...]}`, the
// digests it can no longer serve, which the edge then drops.
//
// Both sides read and write it here, so the edge never sends what the origin
// refuses. The limits bound what one request can make the origin do.
import type { Digest } from './digest.ts';
import { parseDigest } from './digest.ts';
import { errors } from './errors.ts';

/** Outside /v2/ and /api/: the edge never forwards a client's request here. */
export const HIT_REPORT_PATH = '/edge/hits';

export const HIT_REPORT_LIMITS = {
  /** Digests in one report; the edge sends a full batch at once. */
  maxDigests: 256,
  /** Bytes of one report's body: the most digests, quoted and separated, with room to spare. */
  maxBodyBytes: 32 * 1024,
} as const;

export function hitReportBody(digests: readonly Digest[]): string {
  return JSON.stringify({ digests });
}

/**
 * The digests of a report's body (parsed JSON), each checked by the digest
 * grammar and each once; refused whole, in the registry's error format, when
 * anything is wrong.
 */
export function parseHitReport(value: unknown): Digest[] {
  const digests = (value as { digests?: unknown } | null)?.digests;
  if (typeof value !== 'object' || value === null || !Array.isArray(digests)) {
    throw errors.queryInvalid('a hit report is {"digests": ["sha256:…", …]}');
  }
  if (digests.length > HIT_REPORT_LIMITS.maxDigests) {
    throw errors.queryInvalid(`a hit report names at most ${HIT_REPORT_LIMITS.maxDigests} digests, not ${digests.length}`, { max: HIT_REPORT_LIMITS.maxDigests });
  }
  const parsed = new Set<Digest>();
  for (const digest of digests) {
    if (typeof digest !== 'string') throw errors.digestInvalid(String(JSON.stringify(digest)).slice(0, 100), 'not a string');
    parsed.add(parseDigest(digest));
  }
  return [...parsed];
}

export function hitReportAnswer(unknown: readonly Digest[]): string {
  return JSON.stringify({ unknown });
}

/**
 * The unknown digests of the origin's answer, among those that were sent
 * (an answer cannot make the edge drop what it did not report); null when
 * the answer is unreadable.
 */
export function parseHitReportAnswer(text: string, sent: ReadonlySet<Digest>): Digest[] | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const unknown = (value as { unknown?: unknown } | null)?.unknown;
  if (!Array.isArray(unknown)) return null;
  return unknown.filter((d): d is Digest => typeof d === 'string' && sent.has(d as Digest));
}
