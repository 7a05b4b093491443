// A full disk is answered as 503 UNAVAILABLE naming the cause, with Retry-After.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errors } from '../../shared/errors.ts';
import { errorAnswer } from '../../shared/responses.ts';
import { storageFullError, STORAGE_FULL_RETRY_AFTER_SECONDS } from '../../origin/storage/storage-full.ts';
import { nixStepError } from '../../origin/image/nix-errors.ts';
import { NixError } from '../../origin/nix/nix.ts';

const enospc = () => Object.assign(new Error("ENOSPC: no space left on device, write '/srv/storage/.tmp/x'"), { code: 'ENOSPC', path: '/srv/storage/.tmp/x' });

test('ENOSPC and EDQUOT become 503 "storage is full" with Retry-After, and the detail names no path', () => {
  for (const code of ['ENOSPC', 'EDQUOT']) {
    const err = storageFullError(Object.assign(new Error('x'), { code }));
    assert.ok(err);
    assert.equal(err.status, 503);
    assert.equal(err.code, 'UNAVAILABLE');
    assert.match(err.message, new RegExp(`^storage is full: ${code}`));
    assert.equal(err.headers['Retry-After'], String(STORAGE_FULL_RETRY_AFTER_SECONDS));
  }
  const answer = errorAnswer(storageFullError(enospc())!);
  assert.equal(answer.status, 503);
  assert.equal(answer.headers['Retry-After'], '60');
  assert.doesNotMatch(new TextDecoder().decode(answer.body as Uint8Array), /srv/);
});

test('a full disk is found through a cause chain; other errors and RegistryErrors are not full', () => {
  assert.ok(storageFullError(new Error('upload failed', { cause: enospc() })));
  assert.equal(storageFullError(Object.assign(new Error('gone'), { code: 'ENOENT' })), null);
  assert.equal(storageFullError(errors.internal('no space left on device')), null);
  assert.equal(storageFullError('ENOSPC'), null);
  assert.equal(storageFullError(null), null);
});

test('a Nix failure whose stderr says the device is full, or carries Nix\'s note about free disk space, is a 503 naming the Nix store and TMPDIR; other Nix failures stay 500', () => {
  const full = nixStepError('build', new NixError('nix-build failed', "error: writing to file: No space left on device", false, 1));
  assert.ok(full instanceof Error);
  assert.equal((full as { status?: number }).status, 503);
  assert.match((full as Error).message, /^the Nix store or its build directory \(TMPDIR\) is full: No space left on device/);
  const note = nixStepError('build', new NixError('nix-build failed', "head: standard output: I/O error\nerror: builder for '/nix/store/x-a.drv' failed with exit code 1\n       note: build failure may have been caused by lack of free disk space", false, 1));
  assert.equal((note as { status?: number }).status, 503);
  assert.match((note as Error).message, /is full: lack of free disk space/);
  const other = nixStepError('build', new NixError('nix-build failed', 'error: builder failed', false, 1));
  assert.equal((other as { status?: number }).status, 500);
});
