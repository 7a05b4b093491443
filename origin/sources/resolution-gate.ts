// The origin's gate for the resolutions of tags that start a process (a
// channel's prefetch, a git ls-remote; sources/source.ts): a resolution is
// the first step of an evaluation, so it takes an evaluation slot, in the
// client's share of the queue, and is refused with 429 past the queue as
// an evaluation is. A resolution that fails for the tag itself (a channel
// or ref that does not exist: a 4xx) is remembered for FAILURE_TTL, so a
// made-up tag asked again runs nothing until then.
import type { NixAdmission } from '../nix/admission.ts';
import type { FailureMemory } from '../image/failure-memory.ts';
import type { ResolutionGate } from './source.ts';

export function resolutionGate(admission: Pick<NixAdmission, 'run'>, failures: Pick<FailureMemory, 'run'>, client: () => string): ResolutionGate {
  return (key, work) => failures.run(`resolve ${key}`, () => admission.run('evaluation', client(), work));
}
