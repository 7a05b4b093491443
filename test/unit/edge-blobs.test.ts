// The edge's blob signer: the object names it signs are the origin's, its
// URLs are @google-cloud/storage's for the same key, object and time, and a
// URL is reused only while at least half its lifetime is left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Storage } from '@google-cloud/storage';
import { BlobSigner } from '../../edge/blobs.ts';
import { ConfigError } from '../../edge/env.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { serviceAccountKeys } from '../support/signing-key.ts';

delete process.env.STORAGE_EMULATOR_HOST;

const ACCOUNT = 'edge-signer@demo-project.iam.gserviceaccount.com';
const BUCKET = 'edge-layers';
const HEX = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const pair = serviceAccountKeys();

function signer(now: () => number, lifetime = 300, privateKeyPem = pair.privateKey): BlobSigner {
  return new BlobSigner({ backend: 'gcs', bucket: BUCKET, account: ACCOUNT, privateKeyPem, urlLifetimeSeconds: lifetime, apiEndpoint: null }, now);
}

test('the edge signs the object the origin stores a blob under (the storage layout\'s blob key)', async () => {
  const { url } = await signer(() => Date.UTC(2026, 0, 2, 3, 4, 5)).url(`sha256:${HEX}`);
  assert.equal(new URL(url).pathname, `/${BUCKET}/${STORAGE_KEYS.blob(HEX)}`);
});

test('a signed blob URL equals @google-cloud/storage’s for the same key, object and time', async () => {
  // Whole seconds, as URLs state them; recent, as the library refuses to sign an expiry in the past.
  const at = Math.floor(Date.now() / 1000) * 1000;
  const { url } = await signer(() => at + 678).url(`sha256:${HEX}`);
  const library = new Storage({ projectId: 'demo-edge', credentials: { client_email: ACCOUNT, private_key: pair.privateKey } });
  const [expected] = await library.bucket(BUCKET).file(`blobs/sha256/${HEX}`).getSignedUrl({
    version: 'v4',
    action: 'read',
    accessibleAt: new Date(at),
    expires: at + 300_000,
  });
  assert.equal(url, expected);
});

test('a URL is reused while at least half its lifetime is left, then signed afresh', async () => {
  let now = Date.UTC(2026, 0, 2, 3, 4, 5);
  const blobs = signer(() => now, 100);
  const first = await blobs.url(`sha256:${HEX}`);
  assert.equal(first.remainingSeconds, 100);
  now += 49_000;
  const reused = await blobs.url(`sha256:${HEX}`);
  assert.equal(reused.url, first.url);
  assert.equal(reused.remainingSeconds, 51);
  now += 1_000;
  const fresh = await blobs.url(`sha256:${HEX}`);
  assert.notEqual(fresh.url, first.url);
  assert.equal(fresh.remainingSeconds, 100);
});

test('a key that cannot be imported is a configuration error naming GCS_SIGNING_KEY', async () => {
  const broken = signer(Date.now, 300, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----');
  await assert.rejects(broken.url(`sha256:${HEX}`), (err: unknown) => err instanceof ConfigError && err.variable === 'GCS_SIGNING_KEY');
});
