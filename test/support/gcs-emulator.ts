// A real Cloud Storage JSON/XML API server for tests: the storage emulator
// that ships inside firebase-tools, started without its CLI.
//
// The CLI cannot be used here: it insists on Java 21 and downloads a rules
// JAR. The HTTP server itself is plain Node (an express app built by
// `lib/emulator/storage/server.js` around a `StorageEmulator`); only
// `StorageEmulator.start()` touches the rules runtime, so this launcher builds
// the app itself and never calls it. No Java, no network, ready in a fraction
// of a second, bound to 127.0.0.1 on a free port.
//
// It runs in a child process (this same file, re-executed with `--serve`)
// because the emulator keeps object bytes under `os.tmpdir()/firebase/…`, a
// path shared by every emulator on the machine; the child gets its own
// TMPDIR, so parallel test files and benchmarks never see each other's data,
// and stopping it removes everything it wrote.
//
// Two small adjustments are made in front of the emulator's app, both to
// bring it closer to the real service:
// - JSON API paths under `/storage/v1/b/…` are served like `/b/…`. The real
//   service serves everything under `/storage/v1`, which is where the client
//   library sends requests when given `apiEndpoint`; the emulator implements
//   some routes (copy/rewrite, patch) only without the prefix and answers
//   501 otherwise.
// - `ifGenerationMatch=0` ("create only if absent") is enforced on object
//   uploads and copies: when the target exists the answer is the 412 the real
//   service sends. The emulator ignores preconditions entirely, which would
//   make every create-only write look like an overwrite.
//
// Known remaining gaps of the emulator (see the GCS storage tests): no bucket
// routes (objects create buckets on first use, so a "missing bucket" cannot
// be shown), no signature checks on signed URLs, chunked resumable uploads
// (`chunkSize`) fail, and request bodies are limited to 130 MB.
import { spawn } from 'node:child_process';
import { createHash, createVerify } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface GcsEmulator {
  /** `127.0.0.1:PORT`, the form STORAGE_EMULATOR_HOST takes. */
  host: string;
  /** `http://127.0.0.1:PORT`, for the client's `apiEndpoint`. */
  url: string;
  stop(): Promise<void>;
}

export interface GcsEmulatorOptions {
  /** Defaults to a `demo-` project, which firebase tooling treats as offline-only. */
  projectId?: string;
  /** Answer 412 to `ifGenerationMatch=0` writes of existing objects, as GCS does. Default true. */
  enforceCreateOnly?: boolean;
}

/**
 * The environment of an origin storing in `bucket` on this emulator, signing
 * blob URLs with `privateKey` (test/support/signing-key.ts). It names the
 * emulator through STORAGE_EMULATOR_HOST, the client libraries' convention,
 * not GCS_API_ENDPOINT: signed URLs must follow it too.
 */
export function gcsOriginEnv(emulator: GcsEmulator, bucket: string, privateKey: string): Record<string, string> {
  return {
    STORAGE_BACKEND: 'gcs',
    BUCKET: bucket,
    STORAGE_EMULATOR_HOST: emulator.host,
    GCS_SIGNING_ACCOUNT: 'origin@demo-nixery-edge.iam.gserviceaccount.com',
    GCS_SIGNING_KEY: privateKey,
    GOOGLE_CLOUD_PROJECT: 'demo-nixery-edge',
  };
}

const SERVE_FLAG = '--serve';
const THIS_FILE = fileURLToPath(import.meta.url);
const START_TIMEOUT_MS = 20_000;
const TMP_PREFIX = 'gcs-emulator-';

export async function startGcsEmulator(options: GcsEmulatorOptions = {}): Promise<GcsEmulator> {
  const dir = await mkdtemp(join(tmpdir(), TMP_PREFIX));
  const child = spawn(process.execPath, [THIS_FILE, SERVE_FLAG], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: {
      ...process.env,
      TMPDIR: dir,
      // firebase-tools keeps its own config under HOME; keep it out of the real one.
      HOME: dir,
      GCS_EMULATOR_PROJECT: options.projectId ?? 'demo-nixery-edge',
      GCS_EMULATOR_CREATE_ONLY: options.enforceCreateOnly === false ? '0' : '1',
    },
  });
  const output = collectOutput(child);

  let port: number;
  try {
    port = await new Promise<number>((resolvePort, reject) => {
      const timer = setTimeout(() => reject(new Error(`GCS emulator did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      child.once('message', (message: { port?: unknown }) => {
        clearTimeout(timer);
        if (typeof message.port === 'number') resolvePort(message.port);
        else reject(new Error(`GCS emulator sent an unexpected start message: ${JSON.stringify(message)}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`GCS emulator exited during start-up (code ${code}, signal ${signal})`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } catch (err) {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n--- emulator output ---\n${output()}`);
  }

  const host = `127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  return {
    host,
    url: `http://${host}`,
    stop: () => {
      stopped ??= (async () => {
        await stopChild(child);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

function collectOutput(child: ChildProcess): () => string {
  const limit = 16_384;
  let text = '';
  const append = (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-limit);
    if (process.env.GCS_EMULATOR_DEBUG) process.stderr.write(chunk);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return () => text;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Checks a V4 signed URL's signature from the URL alone, following Google's
 * description of the canonical request. The emulator serves signed URLs
 * without looking at their signatures, so tests check them with this.
 */
export function verifySignedUrl(signedUrl: string, publicKeyPem: string): boolean {
  const url = new URL(signedUrl);
  const pairs = url.search.slice(1).split('&').map((pair) => pair.split('=') as [string, string]);
  const value = (name: string) => pairs.find(([n]) => n === name)?.[1];
  const signature = value('X-Goog-Signature');
  if (signature === undefined || value('X-Goog-Algorithm') !== 'GOOG4-RSA-SHA256') return false;
  const signedHeaders = decodeURIComponent(value('X-Goog-SignedHeaders') ?? '');
  if (signedHeaders !== 'host') throw new Error(`verifier handles only the host header, URL signs ${signedHeaders}`);
  const canonicalQuery = pairs
    .filter(([name]) => name !== 'X-Goog-Signature')
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([n, v]) => `${n}=${v}`)
    .join('&');
  const canonicalRequest = ['GET', url.pathname, canonicalQuery, `host:${url.hostname}\n`, signedHeaders, 'UNSIGNED-PAYLOAD'].join('\n');
  const scope = decodeURIComponent(value('X-Goog-Credential') ?? '').split('/').slice(1).join('/');
  const stringToSign = ['GOOG4-RSA-SHA256', decodeURIComponent(value('X-Goog-Date') ?? ''), scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  return createVerify('RSA-SHA256').update(stringToSign).verify(publicKeyPem, Buffer.from(signature, 'hex'));
}

export interface CountingProxy {
  /** `http://127.0.0.1:PORT`: point clients (GCS_API_ENDPOINT) here instead of at the emulator. */
  url: string;
  /** Every request that reached the emulator through the proxy, in order. */
  readonly requests: { method: string; path: string }[];
  stop(): Promise<void>;
}

/**
 * A plain HTTP proxy on 127.0.0.1 in front of the emulator that counts what
 * passes, so a test can show that a client made no storage request. Bodies
 * are streamed both ways, untouched.
 */
export async function startCountingProxy(targetUrl: string): Promise<CountingProxy> {
  const target = new URL(targetUrl);
  const requests: { method: string; path: string }[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '' });
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.once('error', (err) => res.destroy(err));
    req.pipe(upstream);
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
    },
  };
}

// ---------------------------------------------------------------------------
// The child: builds the emulator's app and serves it.

// The slice of firebase-tools' (untyped, CommonJS) emulator this launcher uses.
interface StoredMetadata {
  generation: number;
}
interface StorageEmulatorInstance {
  args: { projectId: string; host: string; port: number };
  adminStorageLayer: { getMetadata(bucket: string, object: string): StoredMetadata | undefined };
  stop(): Promise<void>;
}
interface FirebaseStorageModules {
  StorageEmulator: new (args: { projectId: string; host: string; port: number }) => StorageEmulatorInstance;
  createApp(projectId: string, emulator: StorageEmulatorInstance): Promise<(req: IncomingMessage, res: ServerResponse) => void>;
  register(emulator: StorageEmulatorInstance): void;
}

function loadFirebaseStorage(): FirebaseStorageModules {
  const require = createRequire(import.meta.url);
  // require() is typed `any`; each value is narrowed to the interface above.
  const { StorageEmulator } = require('firebase-tools/lib/emulator/storage/index.js') as Pick<FirebaseStorageModules, 'StorageEmulator'>;
  const { createApp } = require('firebase-tools/lib/emulator/storage/server.js') as Pick<FirebaseStorageModules, 'createApp'>;
  const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry.js') as {
    EmulatorRegistry: { set(name: string, emulator: StorageEmulatorInstance): void };
  };
  // The app builds absolute URLs (bucket metadata, upload sessions) through
  // the registry, which `start()` would have filled in.
  return { StorageEmulator, createApp, register: (emulator) => EmulatorRegistry.set('storage', emulator) };
}

async function serve(): Promise<void> {
  const projectId = process.env.GCS_EMULATOR_PROJECT ?? 'demo-nixery-edge';
  const enforceCreateOnly = process.env.GCS_EMULATOR_CREATE_ONLY !== '0';
  const firebase = loadFirebaseStorage();
  const emulator = new firebase.StorageEmulator({ projectId, host: '127.0.0.1', port: 0 });
  const app = await firebase.createApp(projectId, emulator);

  const server = createServer((req, res) => {
    if (req.url?.startsWith('/storage/v1/b/')) req.url = req.url.slice('/storage/v1'.length);
    if (enforceCreateOnly && targetExistsForCreateOnly(req, emulator)) {
      const message = 'At least one of the pre-conditions you specified did not hold.';
      res.writeHead(412, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(JSON.stringify({ error: { code: 412, message, errors: [{ message, domain: 'global', reason: 'conditionNotMet', locationType: 'header', location: 'If-Match' }] } }));
      return;
    }
    app(req, res);
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const { port } = server.address() as AddressInfo;
  emulator.args.port = port;
  firebase.register(emulator);

  const shutdown = () => {
    server.close();
    server.closeAllConnections();
    // The parent removes this directory too, unless it died first.
    const dir = process.env.TMPDIR;
    if (dir && basename(dir).startsWith(TMP_PREFIX)) rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  // The parent died without stopping us: do not outlive it.
  process.on('disconnect', shutdown);
  process.send?.({ port });
}

const UPLOAD_PATH = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/;
const COPY_PATH = /^\/b\/[^/]+\/o\/[^/]+\/(?:rewriteTo|copyTo)\/b\/([^/]+)\/o\/([^/]+)$/;

/** Whether this is an `ifGenerationMatch=0` upload or copy whose target already exists. */
function targetExistsForCreateOnly(req: IncomingMessage, emulator: StorageEmulatorInstance): boolean {
  if (req.method !== 'POST' || !req.url) return false;
  const url = new URL(req.url, 'http://emulator');
  if (url.searchParams.get('ifGenerationMatch') !== '0') return false;
  let bucket: string | undefined;
  let object: string | undefined;
  const upload = UPLOAD_PATH.exec(url.pathname);
  const copy = COPY_PATH.exec(url.pathname);
  if (upload) {
    // Upload sessions carry the name in the query on every request the
    // client library makes; continuing a session has upload_id instead.
    if (url.searchParams.has('upload_id')) return false;
    bucket = decodeURIComponent(upload[1]!);
    object = url.searchParams.get('name') ?? undefined;
  } else if (copy) {
    bucket = decodeURIComponent(copy[1]!);
    object = decodeURIComponent(copy[2]!);
  }
  if (bucket === undefined || object === undefined) return false;
  return emulator.adminStorageLayer.getMetadata(bucket, object) !== undefined;
}

if (process.argv[2] === SERVE_FLAG && resolve(process.argv[1] ?? '') === THIS_FILE) {
  await serve();
}
