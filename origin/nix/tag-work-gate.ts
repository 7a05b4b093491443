// The origin's gate for Nix and git work that a client's tag starts outside
// an image's own evaluation: a tag's resolution (a channel's prefetch, which
// is a Nix fetch; a git ref's ls-remote) and the evaluation of a package
// set's search index. Tags cost nothing to make up (any channel-shaped
// name, any ref, any 40-character commit), so each such piece of work takes
// an evaluation slot, in the client's share of the queue, and is refused
// with 429 past the queue as an evaluation is. Work that fails for the tag
// itself (a channel, ref or commit that does not exist: a 4xx; a package
// set that fails to evaluate: Nix's 500) is remembered for FAILURE_TTL, so
// a made-up tag asked again runs nothing until then.
import type { NixAdmission } from './admission.ts';
import type { FailureMemory } from '../image/failure-memory.ts';

/** Runs `work`, keyed by what it is for ("channel nixos-24.05", "index …"), as the origin allows. */
export type TagWorkGate = <T>(key: string, work: () => Promise<T>) => Promise<T>;

/** No gate: the work runs at once (tests, and tools outside the origin). */
export const ungated: TagWorkGate = (_key, work) => work();

export function tagWorkGate(admission: Pick<NixAdmission, 'run'>, failures: Pick<FailureMemory, 'run'>, client: () => string): TagWorkGate {
  return (key, work) => failures.run(`tag work ${key}`, () => admission.run('evaluation', client(), work));
}
