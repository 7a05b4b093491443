// The origin answers its edge only: requests must carry ORIGIN_SECRET, or,
// while the secret is being rotated, ORIGIN_SECRET_PREVIOUS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin } from '../support/origin.ts';
import { ORIGIN_SECRET_HEADER } from '../../shared/headers.ts';
import { readConfig, ConfigError } from '../../origin/config.ts';

test('during a rotation the origin accepts the new and the previous secret, and nothing else', async () => {
  const origin = await startOrigin({ env: { ORIGIN_SECRET: 'new-secret', ORIGIN_SECRET_PREVIOUS: 'old-secret' } });
  try {
    const status = async (secret?: string) =>
      (await fetch(`${origin.url}/v2/`, { headers: secret === undefined ? {} : { [ORIGIN_SECRET_HEADER]: secret } })).status;
    assert.equal(await status('new-secret'), 200);
    assert.equal(await status('old-secret'), 200);
    assert.equal(await status('new-secret-but-longer'), 403);
    assert.equal(await status(''), 403);
    assert.equal(await status(), 403);
    const denied = await fetch(`${origin.url}/v2/hello/manifests/latest`);
    assert.equal(((await denied.json()) as { errors: { code: string }[] }).errors[0]!.code, 'DENIED');
    // Health endpoints stay open to the cluster's probes.
    assert.equal((await fetch(`${origin.url}/healthz`)).status, 200);
  } finally {
    await origin.stop();
  }
});

test('a previous secret without a current one is a configuration error', () => {
  assert.throws(() => readConfig({ NIXERY_PKGS_PATH: '.', ORIGIN_SECRET_PREVIOUS: 'old' }), (err: unknown) => err instanceof ConfigError && err.variable === 'ORIGIN_SECRET_PREVIOUS');
  assert.deepEqual(readConfig({ NIXERY_PKGS_PATH: '.' }).originSecrets, []);
});
