// Object names in the registry's storage that both sides need: the origin
// writes blobs under these names, and the edge signs GCS URLs for them
// without asking the origin. They must never drift apart
// (test/unit/edge-blobs.test.ts compares them with the origin's `keys`).

/** The object holding the blob with this sha256 hex digest. */
export function blobObjectName(hex: string): string {
  return `blobs/sha256/${hex}`;
}
