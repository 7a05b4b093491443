// What `docker run IMAGE` starts when the user names no command: the
// image config's Cmd. Pure.
import { SHELL_PACKAGES } from '../../shared/names.ts';
import type { ResolvedPackage } from '../nix/nix.ts';

/** A program name the symlink tree can hold in /bin: one path component. */
const PROGRAM_NAME = /^[^/\0]{1,255}$/;

/**
 * - An image with the `shell` meta-package runs bash, as Nixery's do.
 * - An image that names exactly one package besides the base packages every
 *   image carries (cacert, iana-etc: naming them changes nothing in the
 *   image, so it changes nothing here either) runs that package's
 *   meta.mainProgram, when it declares one: `docker run HOST/hello` greets.
 * - Anything else has no default command: with several packages, which one
 *   the user means is a guess.
 * The program is found through the image's PATH (/bin), where the symlink
 * tree puts every package's bin/, and `docker run IMAGE other` replaces it.
 *
 * `packages` is the image's package list with `shell` expanded
 * (ImageSpec.packages); `resolved` what Nix made of it.
 */
export function defaultCommand(packages: readonly string[], resolved: readonly ResolvedPackage[]): string[] | undefined {
  if (SHELL_PACKAGES.every((p) => packages.includes(p))) return ['bash'];
  // By attribute: two names that find the same package are one package.
  const named = new Map(resolved.filter((p) => !p.base).map((p) => [p.attrPath, p]));
  if (named.size !== 1) return undefined;
  const program = [...named.values()][0]!.mainProgram;
  if (program === undefined || program === '.' || program === '..' || !PROGRAM_NAME.test(program)) return undefined;
  return [program];
}
