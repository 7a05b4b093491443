import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStaleStaging, STAGING_MAX_AGE_MS } from '../../origin/gc/staging.ts';

test('a staged name is stale once its embedded time is older than the limit; other names never are', () => {
  const now = 1_800_000_000_000;
  assert.equal(isStaleStaging(`${now - STAGING_MAX_AGE_MS - 1}-ab12`, now), true);
  assert.equal(isStaleStaging(`${now - STAGING_MAX_AGE_MS + 1}-ab12`, now), false);
  assert.equal(isStaleStaging('probe', now), false);
  assert.equal(isStaleStaging('12-ab', now), false);
  assert.equal(isStaleStaging(`${now - 2 * STAGING_MAX_AGE_MS}-ab12/x`, now), false);
});
