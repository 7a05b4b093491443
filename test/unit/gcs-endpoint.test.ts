// STORAGE_EMULATOR_HOST, the convention of Google's client libraries, is
// honoured by the origin and the edge alike, for object calls and for the
// signed URLs: the two can never point at different servers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, gcsEndpoint } from '../../shared/config.ts';
import { readConfig as readOriginConfig } from '../../origin/config.ts';
import { readConfig as readEdgeConfig, type Env } from '../../edge/env.ts';
import { serviceAccountKeys } from '../support/signing-key.ts';

const PEM = serviceAccountKeys().privateKey;
const origin = (extra: Record<string, string>) => readOriginConfig({ NIXERY_PKGS_PATH: '/', STORAGE_BACKEND: 'gcs', BUCKET: 'b', ...extra });
const edge = (extra: Record<string, string>) =>
  readEdgeConfig({ ORIGIN_URL: 'http://127.0.0.1:8080', STORAGE_BACKEND: 'gcs', BUCKET: 'b', GCS_SIGNING_ACCOUNT: 'a@b', GCS_SIGNING_KEY: PEM, ...extra } as Env);
const originEndpoint = (extra: Record<string, string>) => {
  const storage = origin(extra).storage;
  return storage.backend === 'gcs' ? storage.apiEndpoint : 'not gcs';
};
const edgeEndpoint = (extra: Record<string, string>) => {
  const blobs = edge(extra).blobs;
  return blobs.backend === 'gcs' ? blobs.apiEndpoint : 'not gcs';
};

test('STORAGE_EMULATOR_HOST as host:port or as a URL is the endpoint of every GCS call, on both sides', () => {
  for (const value of ['127.0.0.1:9199', 'http://127.0.0.1:9199', 'http://127.0.0.1:9199/']) {
    assert.equal(originEndpoint({ STORAGE_EMULATOR_HOST: value }), 'http://127.0.0.1:9199', value);
    assert.equal(edgeEndpoint({ STORAGE_EMULATOR_HOST: value }), 'http://127.0.0.1:9199', value);
  }
});

test('without either variable both sides use Google\'s endpoint; GCS_API_ENDPOINT alone works as before', () => {
  assert.equal(originEndpoint({}), null);
  assert.equal(edgeEndpoint({}), null);
  assert.equal(originEndpoint({ GCS_API_ENDPOINT: 'https://storage.example.com/x' }), 'https://storage.example.com');
  assert.equal(edgeEndpoint({ GCS_API_ENDPOINT: 'https://storage.example.com/x' }), 'https://storage.example.com');
});

test('both set to the same server is fine; to different servers stops start-up naming STORAGE_EMULATOR_HOST', () => {
  assert.equal(gcsEndpoint({ GCS_API_ENDPOINT: 'http://127.0.0.1:9199', STORAGE_EMULATOR_HOST: '127.0.0.1:9199' }), 'http://127.0.0.1:9199');
  const both = { GCS_API_ENDPOINT: 'https://storage.googleapis.com', STORAGE_EMULATOR_HOST: '127.0.0.1:9199' };
  for (const read of [() => origin(both), () => edge(both)]) {
    assert.throws(read, (err: unknown) => err instanceof ConfigError && err.variable === 'STORAGE_EMULATOR_HOST' && /different servers/.test(err.message));
  }
  assert.throws(() => gcsEndpoint({ STORAGE_EMULATOR_HOST: 'ftp://x' }), (err: unknown) => err instanceof ConfigError && err.variable === 'STORAGE_EMULATOR_HOST');
});
