// The GCS backend against a real Cloud Storage API server: the emulator from
// firebase-tools (test/support/gcs-emulator.ts), on 127.0.0.1.
//
// What the emulator cannot show is tested through the one seam the backend
// has, an injected client library instance, and each such test says so:
// a 412 arriving as the library's own ApiError, and a missing bucket (the
// emulator creates buckets on first use).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { ApiError, Storage as GoogleStorage } from '@google-cloud/storage';
import { createGcsStorage, GcsStorage } from '../../origin/storage/gcs.ts';
import type { GcsStorageOptions } from '../../origin/storage/gcs.ts';
import { startGcsEmulator, verifySignedUrl } from '../support/gcs-emulator.ts';
import type { GcsEmulator } from '../support/gcs-emulator.ts';
import { serviceAccountKeys } from '../support/signing-key.ts';

// Every request must go to 127.0.0.1. The client library reads this variable
// behind the backend's back; the backend is configured with apiEndpoint only.
delete process.env.STORAGE_EMULATOR_HOST;
// A connection to anywhere but loopback fails the test that made it, loudly.
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
  const first = args[0];
  const options = (Array.isArray(first) ? first[0] : first) as { host?: string } | number | string;
  // connect(options), connect(port, host) or connect(unixPath); no host means localhost.
  const host = typeof options === 'object' && options !== null ? options.host : typeof args[1] === 'string' ? args[1] : undefined;
  if (host !== undefined && !['127.0.0.1', 'localhost', '::1'].includes(host)) {
    throw new Error(`test tried to connect to ${host}; only 127.0.0.1 is allowed`);
  }
  // The original takes the same arguments; its overloads cannot be named here.
  return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
} as typeof connect;

const ACCOUNT = 'nixery-origin@demo-nixery-edge.iam.gserviceaccount.com';
const keys = serviceAccountKeys();
// Fake credentials: with a custom endpoint the library sends no tokens, and
// with a private key it signs URLs locally instead of calling IAM.
const CLIENT_OPTIONS = { projectId: 'demo-nixery-edge', credentials: { client_email: ACCOUNT, private_key: keys.privateKey } };

let emulator: GcsEmulator;
let bucketCount = 0;

before(async () => {
  emulator = await startGcsEmulator();
  assert.match(emulator.url, /^http:\/\/127\.0\.0\.1:\d+$/);
});
after(async () => {
  await emulator?.stop();
});

/** A backend on a bucket of its own, so tests never see each other's objects. */
function backend(extra: Partial<GcsStorageOptions> = {}): GcsStorage {
  return new GcsStorage({
    bucket: `nixery-test-${++bucketCount}`,
    apiEndpoint: emulator.url,
    clientOptions: CLIENT_OPTIONS,
    signing: { account: ACCOUNT, privateKeyPem: keys.privateKey },
    ...extra,
  });
}

/** Every object name in the backend's bucket, staging included, read past the backend. */
/** When the listing says the object under `key` was written. */
async function listedWritten(storage: GcsStorage, key: string): Promise<number | undefined> {
  for await (const object of storage.list(key.slice(0, key.lastIndexOf('/') + 1))) if (object.key === key) return object.written;
  return undefined;
}

async function objectNames(storage: GcsStorage): Promise<string[]> {
  const client = new GoogleStorage({ ...CLIENT_OPTIONS, apiEndpoint: emulator.url });
  const [files] = await client.bucket(storage.bucketName).getFiles();
  return files.map((file) => file.name).sort();
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

test('a staged write streams a multi-megabyte object that appears under its key only after commit', async () => {
  const storage = backend();
  const chunks = Array.from({ length: 12 }, () => randomBytes(1024 * 1024));
  const whole = Buffer.concat(chunks);
  const key = `blobs/sha256/${sha256(whole)}`;
  const staged = await storage.stage();

  let duringUpload: unknown = 'not checked';
  async function* produce() {
    for (const [i, chunk] of chunks.entries()) {
      if (i === chunks.length / 2) duringUpload = await storage.stat(key);
      yield chunk;
    }
  }
  await pipeline(produce(), staged.stream);
  assert.equal(duringUpload, null, 'not visible while bytes are still being written');
  assert.equal(await storage.stat(key), null, 'not visible after the last byte, before commit');
  const beforeCommit = await objectNames(storage);
  assert.equal(beforeCommit.length, 1);
  assert.match(beforeCommit[0]!, /^_staging\//, 'the bytes are already in the bucket, under a temporary name');

  await staged.commit(key, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  assert.deepEqual(await storage.stat(key), { size: whole.length, contentType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', written: await listedWritten(storage, key) });
  const stored = await storage.get(key);
  assert.ok(stored);
  assert.equal(sha256(stored), sha256(whole));
  assert.deepEqual(await objectNames(storage), [key], 'the temporary object is gone');
  await assert.rejects(staged.commit(key, 'x'), /already settled/);
});

test('aborting a staged write leaves nothing behind, mid-stream or after the upload finished, and twice', async () => {
  const storage = backend();
  const midStream = await storage.stage();
  midStream.stream.write(randomBytes(2 * 1024 * 1024));
  await new Promise((resolveLater) => setTimeout(resolveLater, 50));
  await midStream.abort();
  await midStream.abort();
  assert.deepEqual(await objectNames(storage), []);

  const finished = await storage.stage();
  await pipeline(Readable.from([randomBytes(300 * 1024)]), finished.stream);
  assert.equal((await objectNames(storage)).length, 1, 'the upload completed into a temporary object');
  await finished.abort();
  assert.deepEqual(await objectNames(storage), []);
});

test('a commit whose upload failed rejects and leaves nothing behind', async () => {
  const storage = backend();
  const staged = await storage.stage();
  staged.stream.write(randomBytes(64 * 1024));
  staged.stream.destroy(new Error('producer failed'));
  await assert.rejects(staged.commit(`blobs/sha256/${'0'.repeat(64)}`, 'application/octet-stream'), /producer failed/);
  await staged.abort();
  assert.deepEqual(await objectNames(storage), []);
});

test('put, get, stat and ranged read round-trip an object, and absent objects are null', async () => {
  const storage = backend();
  const bytes = new TextEncoder().encode('0123456789abcdefghij');
  await storage.put('manifests/sha256/abc', bytes, 'application/vnd.oci.image.manifest.v1+json');

  assert.deepEqual(await storage.get('manifests/sha256/abc'), Buffer.from(bytes));
  // The time written is the listing's, so retention can tell a record written again since it listed.
  assert.deepEqual(await storage.stat('manifests/sha256/abc'), { size: 20, contentType: 'application/vnd.oci.image.manifest.v1+json', written: await listedWritten(storage, 'manifests/sha256/abc') });
  const part = await storage.read('manifests/sha256/abc', { start: 5, end: 9 });
  assert.ok(part);
  assert.equal((await buffer(part)).toString(), '56789');
  const whole = await storage.read('manifests/sha256/abc');
  assert.ok(whole);
  assert.equal((await buffer(whole)).toString(), '0123456789abcdefghij');

  assert.equal(await storage.get('manifests/sha256/missing'), null);
  assert.equal(await storage.stat('manifests/sha256/missing'), null);
  assert.equal(await storage.read('manifests/sha256/missing'), null);
  assert.equal(await storage.read('manifests/sha256/missing', { start: 0, end: 3 }), null);

  await storage.delete('manifests/sha256/abc');
  assert.equal(await storage.stat('manifests/sha256/abc'), null);
  await storage.delete('manifests/sha256/abc');
});

test('a plain put replaces an object and a create-only put keeps the one already stored', async () => {
  // The emulator ignores preconditions; its launcher answers 412 to
  // ifGenerationMatch=0 writes of existing objects as GCS does, so this also
  // shows the backend sends the precondition.
  const storage = backend();
  const encode = (text: string) => new TextEncoder().encode(text);
  await storage.put('images/a.json', encode('first'), 'application/json', { createOnly: true });
  await storage.put('images/a.json', encode('second'), 'application/json', { createOnly: true });
  assert.equal(Buffer.from((await storage.get('images/a.json'))!).toString(), 'first');
  await storage.put('images/a.json', encode('third'), 'application/json');
  assert.equal(Buffer.from((await storage.get('images/a.json'))!).toString(), 'third');
});

test('committing content that already exists keeps the stored object and removes the temporary one', async () => {
  const storage = backend();
  const key = 'blobs/sha256/existing';
  await storage.put(key, new TextEncoder().encode('stored first'), 'application/octet-stream', { createOnly: true });
  const staged = await storage.stage();
  await pipeline(Readable.from([Buffer.from('written second')]), staged.stream);
  await staged.commit(key, 'application/octet-stream');
  assert.equal(Buffer.from((await storage.get(key))!).toString(), 'stored first');
  assert.deepEqual(await objectNames(storage), [key]);
});

/** An error as the library makes it from a GCS JSON error answer: `new ApiError(body.error)`. */
function gcsError(code: number, message: string, reason: string): ApiError {
  const error = { code, message, errors: [{ message, reason, domain: 'global' }] };
  // The library passes the parsed `error` member, which has no `response`; the constructor's type insists on one.
  return new ApiError(error as unknown as ConstructorParameters<typeof ApiError>[0]);
}

/**
 * The seam: a real client on the emulator whose one-shot writes (save) and
 * copies fail the way the library reports a GCS error answer, as an ApiError
 * with this code. Streaming uploads and deletes still reach the emulator.
 */
function clientFailingCreateOnlyWrites(code: number): { client: GoogleStorage; calls: string[] } {
  const client = new GoogleStorage({ ...CLIENT_OPTIONS, apiEndpoint: emulator.url });
  const calls: string[] = [];
  const bucketOf = client.bucket.bind(client);
  client.bucket = (name, options) => {
    const bucket = bucketOf(name, options);
    const fileOf = bucket.file.bind(bucket);
    bucket.file = (fileName, fileOptions) => {
      const file = fileOf(fileName, fileOptions);
      const fail = (method: string) => async () => {
        calls.push(`${method} ${fileName}`);
        throw code === 412
          ? gcsError(412, 'At least one of the pre-conditions you specified did not hold.', 'conditionNotMet')
          : gcsError(code, 'Backend Error', 'backendError');
      };
      return Object.assign(file, { save: fail('save'), copy: fail('copy') });
    };
    return bucket;
  };
  return { client, calls };
}

test('a 412 ApiError from the library means the content is there: put and commit succeed (seam: constructed error)', async () => {
  const { client, calls } = clientFailingCreateOnlyWrites(412);
  const storage = backend({ client });
  await storage.put('blobs/sha256/a', new Uint8Array([1, 2, 3]), 'application/octet-stream', { createOnly: true });

  const staged = await storage.stage();
  await pipeline(Readable.from([Buffer.from('layer bytes')]), staged.stream);
  await staged.commit('blobs/sha256/b', 'application/octet-stream');
  assert.equal(calls.length, 2);
  assert.equal(calls[0], 'save blobs/sha256/a');
  assert.match(calls[1]!, /^copy _staging\//, 'the temporary object was the copy source');
  assert.deepEqual(await objectNames(storage), [], 'the temporary object is removed');
});

test('other errors from create-only writes are failures, and a failed commit still removes the temporary object (seam)', async () => {
  const { client } = clientFailingCreateOnlyWrites(503);
  const storage = backend({ client });
  await assert.rejects(storage.put('blobs/sha256/a', new Uint8Array([1]), 'application/octet-stream', { createOnly: true }), { code: 503 });
  const staged = await storage.stage();
  await pipeline(Readable.from([Buffer.from('layer bytes')]), staged.stream);
  await assert.rejects(staged.commit('blobs/sha256/b', 'application/octet-stream'), { code: 503 });
  assert.deepEqual(await objectNames(storage), []);
});

test('publicUrl signs with the configured key: plain fetch downloads the bytes and the signature verifies', async () => {
  const storage = backend({ urlLifetimeSeconds: 120 });
  const bytes = randomBytes(256 * 1024);
  await storage.put('blobs/sha256/signed', bytes, 'application/octet-stream');
  const url = await storage.publicUrl('blobs/sha256/signed');
  assert.ok(url);
  assert.ok(url.startsWith(`${emulator.url}/${storage.bucketName}/blobs/sha256/signed?`));
  const params = new URL(url).searchParams;
  assert.equal(params.get('X-Goog-Expires'), '120');
  assert.equal(params.get('X-Goog-Credential')?.split('/')[0], ACCOUNT);
  assert.equal(verifySignedUrl(url, keys.publicKey), true);

  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.equal(sha256(new Uint8Array(await response.arrayBuffer())), sha256(bytes));
});

test('a signing key given as the path of a PEM file, as Nixery takes it, signs the same way', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gcs-key-'));
  try {
    const path = join(dir, 'key.pem');
    await writeFile(path, keys.privateKey);
    const storage = backend({ signing: { account: ACCOUNT, privateKeyPem: path } });
    const url = await storage.publicUrl('blobs/sha256/any');
    assert.ok(url);
    assert.equal(verifySignedUrl(url, keys.publicKey), true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('without a signing key publicUrl falls back to the library signer, whose URL also downloads and verifies', async () => {
  // The library signs with the credentials it holds; here a local key, in
  // production Application Default Credentials through IAM signBlob.
  const storage = backend({ signing: null });
  await storage.put('blobs/sha256/fallback', new TextEncoder().encode('fallback bytes'), 'application/octet-stream');
  const url = await storage.publicUrl('blobs/sha256/fallback');
  assert.ok(url);
  assert.equal(new URL(url).searchParams.get('X-Goog-Expires'), '300', 'five minutes by default');
  assert.equal(verifySignedUrl(url, keys.publicKey), true);
  const response = await fetch(url);
  assert.equal(await response.text(), 'fallback bytes');
});

test('objects live under the configured prefix, and keys that could escape it are refused', async () => {
  const storage = backend({ prefix: 'registry-a' });
  await storage.put('manifests/x', new Uint8Array([1]), 'application/octet-stream');
  assert.deepEqual(await objectNames(storage), ['registry-a/manifests/x']);
  for (const bad of ['', '/abs', 'a/../b', 'a//b', '_staging/x', 'with space']) {
    await assert.rejects(storage.stat(bad), /invalid storage key/, JSON.stringify(bad));
  }
});

test('the start-up check passes against a reachable bucket with a usable key', async () => {
  const storage = await createGcsStorage({ bucket: 'nixery-startup', apiEndpoint: emulator.url, clientOptions: CLIENT_OPTIONS, signing: { account: ACCOUNT, privateKeyPem: keys.privateKey } });
  assert.equal(storage.name, 'gcs');
});

test('the start-up check fails quickly and clearly when the endpoint is unreachable', async () => {
  const closedPort = await new Promise<number>((resolvePort) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
  await assert.rejects(
    createGcsStorage({ bucket: 'nixery-unreachable', apiEndpoint: `http://127.0.0.1:${closedPort}`, clientOptions: CLIENT_OPTIONS }),
    (err: Error) => {
      assert.match(err.message, /GCS bucket "nixery-unreachable" at http:\/\/127\.0\.0\.1:\d+ is not reachable/);
      assert.match(err.message, /ECONNREFUSED/);
      return true;
    },
  );
});

test('the start-up check names an unusable signing key', async () => {
  const base = { bucket: 'nixery-badkey', apiEndpoint: emulator.url, clientOptions: CLIENT_OPTIONS };
  await assert.rejects(createGcsStorage({ ...base, signing: { account: ACCOUNT, privateKeyPem: '/nonexistent/key.pem' } }), /cannot sign URLs .* with the key for .*neither PEM text nor a readable file/);
  await assert.rejects(createGcsStorage({ ...base, signing: { account: ACCOUNT, privateKeyPem: keys.publicKey } }), /cannot sign URLs .*unsupported PEM type "PUBLIC KEY"/);
});

test('the start-up check reports a missing bucket as such (seam: the emulator creates buckets on first use)', async () => {
  const client = new GoogleStorage({ ...CLIENT_OPTIONS, apiEndpoint: emulator.url });
  const bucketOf = client.bucket.bind(client);
  client.bucket = (name, options) =>
    Object.assign(bucketOf(name, options), {
      getFiles: async () => {
        throw gcsError(404, 'The specified bucket does not exist.', 'notFound');
      },
    });
  await assert.rejects(createGcsStorage({ bucket: 'nixery-missing', apiEndpoint: emulator.url, client }), /GCS bucket "nixery-missing" at .* does not exist: The specified bucket does not exist/);
});

test('staging leftovers older than the limit are swept; younger ones and objects under keys stay', async () => {
  const storage = backend();
  const client = new GoogleStorage({ ...CLIENT_OPTIONS, apiEndpoint: emulator.url });
  const bucket = client.bucket(storage.bucketName);
  const now = Date.now();
  await bucket.file(`_staging/${now - 2 * 3_600_000}-ab`).save('old leftover');
  await bucket.file(`_staging/${now - 60_000}-cd`).save('in flight');
  await storage.put('blobs/sha256/kept', new TextEncoder().encode('x'), 'application/octet-stream');
  assert.deepEqual(await storage.sweepStaging(now, 3_600_000), { removed: 1, bytes: 'old leftover'.length });
  assert.deepEqual(await objectNames(storage), ['_staging/' + `${now - 60_000}-cd`, 'blobs/sha256/kept'].sort());
});

test('a listing names every object under a prefix with its size and time written, page by page, never staged writes', async () => {
  const storage = backend({ prefix: 'registry-a' });
  const client = new GoogleStorage({ ...CLIENT_OPTIONS, apiEndpoint: emulator.url });
  const before = Date.now();
  for (const [key, bytes] of [['blobs/sha256/aa', '12345'], ['blobs/sha256/bb', '1'], ['blobs/sha256/cc', '12'], ['images/k.json', '{}']] as const) {
    await storage.put(key, new TextEncoder().encode(bytes), 'application/octet-stream');
  }
  await client.bucket(storage.bucketName).file(`registry-a/_staging/${before}-ab`).save('staged');
  await client.bucket(storage.bucketName).file('elsewhere/blobs/sha256/dd').save('another registry');
  const listed = [];
  // Pages of two: three blobs take two requests.
  for await (const object of storage.list('blobs/', 2)) listed.push(object);
  listed.sort((a, b) => a.key.localeCompare(b.key));
  assert.deepEqual(listed.map((o) => [o.key, o.size]), [['blobs/sha256/aa', 5], ['blobs/sha256/bb', 1], ['blobs/sha256/cc', 2]]);
  for (const object of listed) assert.ok(object.written >= before - 5000 && object.written <= Date.now() + 5000, `${object.key} written ${object.written}`);
  const everything = [];
  for await (const object of storage.list('', 1)) everything.push(object.key);
  assert.deepEqual(everything.sort(), ['blobs/sha256/aa', 'blobs/sha256/bb', 'blobs/sha256/cc', 'images/k.json']);
  await assert.rejects(async () => {
    for await (const object of storage.list('blobs')) assert.fail(object.key);
  }, /invalid listing prefix/);
});
