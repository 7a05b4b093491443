// How the edge reads the origin's remembered failures. The origin marks an
// error that is the image's own (a broken package, an unknown one, a limit:
// origin/image/failure-memory.ts) with `Cache-Control: public, max-age=N`,
// N being how long it remembers it. Such an answer goes to the client as
// the origin wrote it, whatever its status (a 500 with Nix's words, not a
// 503 UNAVAILABLE), and the edge replays it for N seconds without asking
// the origin. Errors without max-age (a refusal, a draining or failing
// origin) are the origin's state, not the image's, and are not remembered.
//
// No Workers-only API here: the Node unit tests import it.
import type { OriginAnswer } from './origin.ts';

/** Longest the edge keeps a failure, whatever the origin says: a fix shows within this. */
const MAX_REMEMBER_SECONDS = 3600;

/** Seconds the origin asked for an error answer to be remembered, or null when it did not mark it. */
export function rememberFor(answer: Pick<OriginAnswer, 'status' | 'headers'>): number | null {
  if (answer.status < 400 || answer.status === 429 || answer.status === 503) return null;
  const match = /(?:^|[,\s])max-age=(\d+)/.exec(answer.headers.get('Cache-Control') ?? '');
  if (!match) return null;
  return Math.min(MAX_REMEMBER_SECONDS, Number(match[1]));
}

/** An error the origin marked as the image's own (max-age present, even 0). */
export function isImageFailure(answer: Pick<OriginAnswer, 'status' | 'headers'>): boolean {
  return rememberFor(answer) !== null;
}
