// The Worker's configuration: defaults, validation with one clear message
// naming the variable, and reading once per isolate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configFor, ConfigError, readConfig, type Env } from '../../edge/env.ts';
import { readWranglerToml } from '../../scripts/edge-runtime.ts';

const PEM = '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----';

test('defaults fill everything but ORIGIN_URL, and a trailing slash is dropped from it', () => {
  const config = readConfig({ ORIGIN_URL: 'https://origin.example.com/' });
  assert.deepEqual(config, {
    originUrl: 'https://origin.example.com',
    originSecret: null,
    originTimeoutMs: 90_000,
    staleTimeoutMs: 5_000,
    tagTtlSeconds: 60,
    staleTtlSeconds: 7 * 24 * 3600,
    digestTtlSeconds: 365 * 24 * 3600,
    negativeTtlSeconds: 10,
    rateLimitPeriodSeconds: 60,
    blobs: { backend: 'filesystem' },
    blobDelivery: 'redirect',
    blobCacheMaxBytes: 512 * 1024 * 1024,
    globalStore: null,
    usageReportIntervalSeconds: 3600,
    usageReportDelayMs: 5_000,
  });
});

test('numbers may come as strings (wrangler [vars], secrets) or as JSON numbers', () => {
  const config = readConfig({ ORIGIN_URL: 'http://127.0.0.1:8080', MANIFEST_TAG_TTL: 5, ORIGIN_TIMEOUT_MS: ' 2500 ', ORIGIN_SECRET: 's' });
  assert.equal(config.tagTtlSeconds, 5);
  assert.equal(config.originTimeoutMs, 2500);
  assert.equal(config.originSecret, 's');
});

test('an invalid variable is named in the error', () => {
  const cases: [Env, string][] = [
    [{}, 'ORIGIN_URL'],
    [{ ORIGIN_URL: 'not a url' }, 'ORIGIN_URL'],
    [{ ORIGIN_URL: 'ftp://x' }, 'ORIGIN_URL'],
    [{ ORIGIN_URL: 'http://x?y=1' }, 'ORIGIN_URL'],
    [{ ORIGIN_URL: 'http://x', MANIFEST_TAG_TTL: '-1' }, 'MANIFEST_TAG_TTL'],
    [{ ORIGIN_URL: 'http://x', ORIGIN_TIMEOUT_MS: '1.5' }, 'ORIGIN_TIMEOUT_MS'],
    [{ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 's3' }, 'STORAGE_BACKEND'],
    [{ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 'gcs' }, 'BUCKET'],
    [{ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 'gcs', BUCKET: 'b' }, 'GCS_SIGNING_ACCOUNT'],
    [{ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 'gcs', BUCKET: 'b', GCS_SIGNING_ACCOUNT: 'a@b' }, 'GCS_SIGNING_KEY'],
    [{ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 'gcs', BUCKET: 'b', GCS_SIGNING_ACCOUNT: 'a@b', GCS_SIGNING_KEY: 'secret-but-not-pem' }, 'GCS_SIGNING_KEY'],
    [{ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 'gcs', BUCKET: 'b', GCS_SIGNING_ACCOUNT: 'a@b', GCS_SIGNING_KEY: PEM, GCS_URL_LIFETIME: '5' }, 'GCS_URL_LIFETIME'],
    [{ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 'gcs', BUCKET: 'b', GCS_SIGNING_ACCOUNT: 'a@b', GCS_SIGNING_KEY: PEM, GCS_API_ENDPOINT: 'gs://x' }, 'GCS_API_ENDPOINT'],
    [{ ORIGIN_URL: 'http://x', BLOB_DELIVERY: 'edge' }, 'BLOB_DELIVERY'],
    [{ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 'gcs', BUCKET: 'b', GCS_SIGNING_ACCOUNT: 'a@b', GCS_SIGNING_KEY: PEM, BLOB_DELIVERY: 'proxy' }, 'BLOB_DELIVERY'],
    [{ ORIGIN_URL: 'http://x', BLOB_CACHE_MAX_BYTES: '-1' }, 'BLOB_CACHE_MAX_BYTES'],
    [{ ORIGIN_URL: 'http://x', USAGE_REPORT_INTERVAL: 'off' }, 'USAGE_REPORT_INTERVAL'],
    // Past what ctx.waitUntil allows after the response.
    [{ ORIGIN_URL: 'http://x', USAGE_REPORT_DELAY_MS: '30000' }, 'USAGE_REPORT_DELAY_MS'],
    // A [vars] entry where a KV binding belongs.
    [{ ORIGIN_URL: 'http://x', GLOBAL_MANIFESTS: 'my-namespace' } as unknown as Env, 'GLOBAL_MANIFESTS'],
  ];
  for (const [env, variable] of cases) {
    assert.throws(
      () => readConfig(env),
      (err: unknown) => err instanceof ConfigError && err.variable === variable && err.message.startsWith(`${variable}: `),
      JSON.stringify(env),
    );
  }
});

test('a secret’s value never appears in the error about it', () => {
  try {
    readConfig({ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 'gcs', BUCKET: 'b', GCS_SIGNING_ACCOUNT: 'a@b', GCS_SIGNING_KEY: 'hunter2-secret' });
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.doesNotMatch(err.message, /hunter2/);
  }
});

test('GCS storage reads bucket, account, key and lifetime', () => {
  const config = readConfig({ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 'gcs', BUCKET: 'layers', GCS_SIGNING_ACCOUNT: 'a@b', GCS_SIGNING_KEY: PEM });
  assert.deepEqual(config.blobs, { backend: 'gcs', bucket: 'layers', account: 'a@b', privateKeyPem: PEM, urlLifetimeSeconds: 300, apiEndpoint: null });
  const emulated = readConfig({ ORIGIN_URL: 'http://x', STORAGE_BACKEND: 'gcs', BUCKET: 'layers', GCS_SIGNING_ACCOUNT: 'a@b', GCS_SIGNING_KEY: PEM, GCS_API_ENDPOINT: 'http://127.0.0.1:9199/' });
  assert.equal(emulated.blobs.backend === 'gcs' && emulated.blobs.apiEndpoint, 'http://127.0.0.1:9199');
});

test('the configuration is read once per bindings object, errors included', () => {
  const env: Env = { ORIGIN_URL: 'http://x' };
  assert.equal(configFor(env), configFor(env));
  const bad: Env = {};
  const first = (() => {
    try {
      configFor(bad);
    } catch (err) {
      return err;
    }
  })();
  assert.ok(first instanceof ConfigError);
  // Fixing the object afterwards changes nothing: an isolate reads its bindings once.
  bad.ORIGIN_URL = 'http://x';
  assert.throws(() => configFor(bad), (err: unknown) => err === first);
});

test('wrangler.toml’s [vars] say what the Worker assumes when they are absent', () => {
  const { vars, compatibilityDate } = readWranglerToml(readFileSync(new URL('../../wrangler.toml', import.meta.url), 'utf8'));
  assert.match(compatibilityDate, /^\d{4}-\d{2}-\d{2}$/);
  assert.deepEqual(readConfig(vars), readConfig({ ORIGIN_URL: vars.ORIGIN_URL }));
});

test('wrangler.toml’s [[ratelimits]] binding is read for the local run, its period matching ORIGIN_RATE_LIMIT_PERIOD', () => {
  const { vars, ratelimits } = readWranglerToml(readFileSync(new URL('../../wrangler.toml', import.meta.url), 'utf8'));
  assert.deepEqual(Object.keys(ratelimits), ['ORIGIN_RATE_LIMITER']);
  assert.equal(String(ratelimits.ORIGIN_RATE_LIMITER!.simple.period), vars.ORIGIN_RATE_LIMIT_PERIOD);
  assert.ok(ratelimits.ORIGIN_RATE_LIMITER!.simple.limit >= 1);
});

test('the local reader of wrangler.toml takes strings, numbers and other tables, and refuses what it cannot read', () => {
  const toml = ['name = "x"', 'compatibility_date = "2026-04-01"', '[vars]', 'A = "a \\"quoted\\" # not a comment"', 'B = 5 # a comment', '[[routes]]', 'pattern = "r.example.com"', '[[kv_namespaces]]', 'binding = "KV"'].join('\n');
  assert.deepEqual(readWranglerToml(toml), { compatibilityDate: '2026-04-01', vars: { A: 'a "quoted" # not a comment', B: '5' }, kvNamespaces: ['KV'], ratelimits: {} });
  assert.throws(() => readWranglerToml('compatibility_date = "2026-04-01"\n[vars]\nA = { x = 1 }'), /cannot read this \[vars\] line/);
});
