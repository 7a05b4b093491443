// What one image may cost: how many packages it names, how many bytes its
// runtime closure holds, how many bytes one layer holds (uncompressed, as
// Nix reports the store paths' NAR sizes). Each is checked before anything
// of the image is written, so a refused image leaves nothing behind.
//
// Codes, from the distribution spec's list:
// - too many packages: NAME_INVALID (400). The name is the list of
//   packages, so the client's name is what is wrong, and it can fix it;
//   known before any Nix runs.
// - closure or layer too large: DENIED (403), "access to the resource is
//   denied". The image is well named and could exist, but this registry will
//   not make it. 413 is about the size of a request's own body, which a pull
//   does not have, and clients show 403 with its message as it is.
// The detail names the limit (`limit`, `max`, `actual`) in every case.
import { RegistryError, errors } from '../../shared/errors.ts';
import type { StorePathInfo } from '../layers/graph.ts';

export interface ImageLimits {
  maxPackages: number;
  maxClosureBytes: number;
  maxLayerBytes: number;
}

export const MIB = 1024 * 1024;

const mib = (bytes: number) => `${Math.round((bytes / MIB) * 10) / 10} MiB`;

/** NAME_INVALID when the image names more packages than allowed. */
export function checkPackages(limits: ImageLimits, packages: readonly string[]): void {
  if (packages.length <= limits.maxPackages) return;
  throw new RegistryError(
    'NAME_INVALID',
    `this image names ${packages.length} packages; this registry builds images of at most ${limits.maxPackages} (MAX_IMAGE_PACKAGES)`,
    { limit: 'packages', max: limits.maxPackages, actual: packages.length },
  );
}

/** DENIED when the closure, or one layer of it, is larger than allowed. */
export function checkSizes(limits: ImageLimits, closure: readonly StorePathInfo[], layers: readonly (readonly string[])[]): void {
  const sizes = new Map(closure.map((p) => [p.path, p.narSize]));
  const closureBytes = closure.reduce((sum, p) => sum + p.narSize, 0);
  if (closureBytes > limits.maxClosureBytes) {
    throw errors.limitExceeded(`this image's closure holds ${mib(closureBytes)}; this registry builds images of at most ${mib(limits.maxClosureBytes)} (MAX_CLOSURE_MIB)`, {
      limit: 'closureBytes',
      max: limits.maxClosureBytes,
      actual: closureBytes,
    });
  }
  for (const layer of layers) {
    const bytes = layer.reduce((sum, path) => sum + (sizes.get(path) ?? 0), 0);
    if (bytes > limits.maxLayerBytes) {
      throw errors.limitExceeded(`a layer of this image would hold ${mib(bytes)}; this registry writes layers of at most ${mib(limits.maxLayerBytes)} (MAX_LAYER_MIB)`, {
        limit: 'layerBytes',
        max: limits.maxLayerBytes,
        actual: bytes,
      });
    }
  }
}
