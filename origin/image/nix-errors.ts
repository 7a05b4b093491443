// What Nix's answers mean to a registry client. Pure: Nix's results and
// errors in, RegistryErrors out.
//
// Names that are no package are the client's mistake: 404 MANIFEST_UNKNOWN
// naming each of them. Failures of Nix that the client did not cause become
// a 500 with Nix's own words in the detail. Two Nix errors are not failures
// but answers about the tag or name, so MANIFEST_UNKNOWN too: a source that
// cannot be fetched, and a system this origin has no builder for (it cannot
// ever have that image).
import { errors, type RegistryError } from '../../shared/errors.ts';
import { storageFullError } from '../storage/storage-full.ts';
import { NixError, NixFetchError, NixSystemError, type Resolution } from '../nix/nix.ts';
import { currentBuildChannel } from './build-events.ts';

/** The one error for every name of an image that Nix could not make a package of. */
export function describeProblems(problems: Resolution['problems']): RegistryError {
  const unknown = problems.filter((p) => p.error === 'unknown').map((p) => p.name);
  const notPackages = problems.filter((p) => p.error === 'not-a-package').map((p) => p.name);
  const failed = problems.filter((p) => p.error === 'evaluation-failed').map((p) => p.name);
  const parts = [
    unknown.length ? `unknown package${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}` : '',
    notPackages.length ? `not a package (an attribute set, not a derivation): ${notPackages.join(', ')}` : '',
    failed.length ? `failed to evaluate: ${failed.join(', ')}` : '',
  ].filter(Boolean);
  return errors.manifestUnknown(parts.join('; '), { unknown, notPackages, failed });
}

/** The registry's answer for an error thrown by one step of Nix work ("evaluation", "build", …); other errors pass unchanged. */
export function nixStepError(step: string, err: unknown): unknown {
  if (err instanceof NixFetchError) return errors.manifestUnknown(err.message, { nix: err.stderr });
  if (err instanceof NixSystemError) {
    return errors.manifestUnknown(`cannot build this image: ${err.message}`, { system: err.requiredSystem, drv: err.drv, nix: err.stderr });
  }
  if (err instanceof NixError) {
    // A full store or TMPDIR is not Nix's failure but a wait: 503 naming both, as Nix's
    // words do not tell which (a builder writes to either; Nix's own note covers both).
    const full = storageFullError({ message: `${err.message}\n${err.stderr}` }, 'the Nix store or its build directory (TMPDIR)');
    if (full !== null) return full;
    const message = err.timedOut ? `nix ${step} timed out` : `nix ${step} failed`;
    return errors.internal(`${message}: ${err.message}`, { nix: err.stderr });
  }
  return err;
}

/** Runs one step of Nix work, answering its failure as `nixStepError` says. */
export async function nixStep<T>(step: string, work: () => Promise<T>): Promise<T> {
  currentBuildChannel()?.step(step);
  try {
    return await work();
  } catch (err) {
    throw nixStepError(step, err);
  }
}
