// The WebCrypto V4 signer against the reference implementation: every URL
// must equal, byte for byte, what @google-cloud/storage makes for the same
// key, object and time, and its signature must verify on its own.
//
// Nothing here touches the network: the library signs locally when given a
// private key, and URLs are only built, never fetched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Storage } from '@google-cloud/storage';
import { importSigningKey, signGcsUrl } from '../../shared/gcs-signer.ts';
// An independent check of the signature, from the URL alone (see there).
import { verifySignedUrl } from '../support/gcs-emulator.ts';
import { serviceAccountKeys } from '../support/signing-key.ts';

// An inherited emulator host would redirect the library's URLs and make the
// comparison pass or fail for the wrong reason.
delete process.env.STORAGE_EMULATOR_HOST;

const ACCOUNT = 'nixery-signer@demo-project.iam.gserviceaccount.com';
const BUCKET = 'nixery-layers';
const keys = serviceAccountKeys();
const pkcs1Pem = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
});

function libraryStorage(apiEndpoint?: string, privateKey = keys.privateKey): Storage {
  return new Storage({
    projectId: 'demo-signer',
    credentials: { client_email: ACCOUNT, private_key: privateKey },
    ...(apiEndpoint ? { apiEndpoint } : {}),
  });
}

async function librarySignedUrl(storage: Storage, object: string, at: number, lifetime: number): Promise<string> {
  const [url] = await storage.bucket(BUCKET).file(object).getSignedUrl({
    version: 'v4',
    action: 'read',
    // accessibleAt fixes the library's clock; expires is absolute.
    accessibleAt: new Date(at),
    expires: at + lifetime * 1000,
  });
  return url;
}

const OBJECT_NAMES = [
  'plain',
  'blobs/sha256/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  'with space/and more  spaces',
  'plus+sign+name',
  'tilde~name/~home',
  'ünïcødé/日本語/🐳.tar.gz',
  "quotes'(paren)*star!bang",
  'percent%2Fliteral and %20',
  'question?hash#semi;colon:at@comma,eq=amp&dollar$',
  'a//double-slash/',
];

// Fixed times in the future (the library refuses expiry dates already past),
// one near now, and lifetimes from the shortest to the V4 maximum.
const TIMES: [string, number, number][] = [
  ['one second lifetime at the end of a day', Date.parse('2031-02-28T23:59:59.999Z'), 1],
  ['five minutes on a leap day', Date.parse('2032-02-29T12:00:00.000Z'), 300],
  ['seven days across a year boundary', Date.parse('2099-12-31T23:59:30.250Z'), 604800],
  ['an hour from about now', Date.now() + 60_000, 3600],
];

test('signed URLs equal the library output for every object name and time', async () => {
  const storage = libraryStorage();
  for (const [label, at, lifetime] of TIMES) {
    for (const object of OBJECT_NAMES) {
      const expected = await librarySignedUrl(storage, object, at, lifetime);
      const actual = await signGcsUrl({ bucket: BUCKET, object, account: ACCOUNT, key: keys.privateKey, expiresInSeconds: lifetime, now: at });
      assert.equal(actual, expected, `${label}: ${JSON.stringify(object)}`);
    }
  }
});

test('signed URLs are path-style on storage.googleapis.com with the V4 parameters in library order', async () => {
  const at = Date.parse('2031-06-01T10:20:30Z');
  const url = await signGcsUrl({ bucket: BUCKET, object: 'dir/a b', account: ACCOUNT, key: keys.privateKey, expiresInSeconds: 300, now: at });
  const parsed = new URL(url);
  assert.equal(parsed.origin, 'https://storage.googleapis.com');
  assert.equal(parsed.pathname, `/${BUCKET}/dir/a%20b`);
  assert.deepEqual(
    [...parsed.searchParams.keys()],
    ['X-Goog-Algorithm', 'X-Goog-Credential', 'X-Goog-Date', 'X-Goog-Expires', 'X-Goog-SignedHeaders', 'X-Goog-Signature'],
  );
  assert.equal(parsed.searchParams.get('X-Goog-Credential'), `${ACCOUNT}/20310601/auto/storage/goog4_request`);
  assert.equal(parsed.searchParams.get('X-Goog-Date'), '20310601T102030Z');
  assert.equal(parsed.searchParams.get('X-Goog-Expires'), '300');
  assert.equal(parsed.searchParams.get('X-Goog-SignedHeaders'), 'host');
  assert.match(parsed.searchParams.get('X-Goog-Signature') ?? '', /^[0-9a-f]{512}$/);
});

test('signatures verify with the public key and fail once the URL is altered', async () => {
  for (const object of OBJECT_NAMES) {
    const url = await signGcsUrl({ bucket: BUCKET, object, account: ACCOUNT, key: keys.privateKey, expiresInSeconds: 900, now: Date.parse('2031-01-01T00:00:00Z') });
    assert.equal(verifySignedUrl(url, keys.publicKey), true, JSON.stringify(object));
    assert.equal(verifySignedUrl(url.replace('X-Goog-Expires=900', 'X-Goog-Expires=901'), keys.publicKey), false, 'changed expiry');
    const otherObject = url.replace(`/${BUCKET}/`, `/${BUCKET}/x`);
    assert.equal(verifySignedUrl(otherObject, keys.publicKey), false, 'changed object');
  }
  const url = await signGcsUrl({ bucket: BUCKET, object: 'o', account: ACCOUNT, key: keys.privateKey, expiresInSeconds: 60 });
  assert.equal(verifySignedUrl(url, pkcs1Pem.publicKey), false, 'another key');
});

test('an origin override matches the library pointed at the same endpoint and signs the bare hostname', async () => {
  const origin = 'http://127.0.0.1:4443';
  const storage = libraryStorage(origin);
  const at = Date.parse('2031-03-04T05:06:07Z');
  for (const object of OBJECT_NAMES) {
    const expected = await librarySignedUrl(storage, object, at, 300);
    const actual = await signGcsUrl({ bucket: BUCKET, object, account: ACCOUNT, key: keys.privateKey, expiresInSeconds: 300, now: at, origin });
    assert.equal(actual, expected, JSON.stringify(object));
    assert.ok(actual.startsWith(`${origin}/${BUCKET}/`));
    assert.equal(verifySignedUrl(actual, keys.publicKey), true);
  }
});

test('an already imported key signs exactly like its PEM', async () => {
  const key = await importSigningKey(keys.privateKey);
  const request = { bucket: BUCKET, object: 'blobs/sha256/abc', account: ACCOUNT, expiresInSeconds: 300, now: Date.parse('2031-05-05T05:05:05Z') };
  assert.equal(await signGcsUrl({ ...request, key }), await signGcsUrl({ ...request, key: keys.privateKey }));
});

test('a PKCS#1 RSA key is accepted and signs like the library does with it', async () => {
  const storage = libraryStorage(undefined, pkcs1Pem.privateKey);
  const at = Date.parse('2031-07-08T09:10:11Z');
  const expected = await librarySignedUrl(storage, 'layers/x y', at, 600);
  const actual = await signGcsUrl({ bucket: BUCKET, object: 'layers/x y', account: ACCOUNT, key: pkcs1Pem.privateKey, expiresInSeconds: 600, now: at });
  assert.ok(pkcs1Pem.privateKey.startsWith('-----BEGIN RSA PRIVATE KEY-----'));
  assert.equal(actual, expected);
  assert.equal(verifySignedUrl(actual, pkcs1Pem.publicKey), true);
});

test('a PEM whose newlines were flattened to backslash-n, as in JSON key files, still imports', async () => {
  const flattened = keys.privateKey.replace(/\n/g, '\\n');
  const request = { bucket: BUCKET, object: 'o', account: ACCOUNT, expiresInSeconds: 60, now: Date.parse('2031-01-01T00:00:00Z') };
  assert.equal(await signGcsUrl({ ...request, key: flattened }), await signGcsUrl({ ...request, key: keys.privateKey }));
});

test('unusable keys are refused with a message naming the problem', async () => {
  await assert.rejects(importSigningKey('not a pem'), /not a PEM block/);
  await assert.rejects(importSigningKey(keys.publicKey), /unsupported PEM type "PUBLIC KEY"/);
  await assert.rejects(importSigningKey('-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----'), /encrypted/);
  await assert.rejects(importSigningKey('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----'), /could not be imported/);
  const verifyOnly = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  await assert.rejects(
    signGcsUrl({ bucket: BUCKET, object: 'o', account: ACCOUNT, key: verifyOnly, expiresInSeconds: 60 }),
    /RSASSA-PKCS1-v1_5/,
  );
});

test('lifetimes outside 1 second to 7 days and unsignable names are refused', async () => {
  const base = { bucket: BUCKET, account: ACCOUNT, key: keys.privateKey, object: 'o' };
  await assert.rejects(signGcsUrl({ ...base, expiresInSeconds: 0 }), RangeError);
  await assert.rejects(signGcsUrl({ ...base, expiresInSeconds: 604801 }), RangeError);
  await assert.rejects(signGcsUrl({ ...base, expiresInSeconds: 1.5 }), RangeError);
  await assert.rejects(signGcsUrl({ ...base, expiresInSeconds: 60, object: 'a/../b' }), /"\." or "\.\." segment/);
  await assert.rejects(signGcsUrl({ ...base, expiresInSeconds: 60, object: '' }), /must not be empty/);
  await assert.rejects(signGcsUrl({ ...base, expiresInSeconds: 60, bucket: 'a/b' }), /invalid bucket/);
});
