import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MEDIA, negotiateManifestFormat } from '../../shared/media-types.ts';
import { errorBody, errors, toRegistryError, isErrorBody } from '../../shared/errors.ts';

test('docker schema2 is answered unless a client asks for OCI only', () => {
  assert.equal(negotiateManifestFormat(undefined), 'docker');
  assert.equal(negotiateManifestFormat(''), 'docker');
  assert.equal(negotiateManifestFormat(MEDIA.ociManifest), 'oci');
  assert.equal(negotiateManifestFormat(`${MEDIA.ociManifest}, ${MEDIA.ociIndex}`), 'oci');
  assert.equal(negotiateManifestFormat(`${MEDIA.ociManifest};q=0.5, ${MEDIA.dockerManifest}`), 'docker');
  assert.equal(negotiateManifestFormat(`${MEDIA.ociManifest}, */*`), 'docker');
});

test('registry errors render as the distribution error body with their status', () => {
  const err = errors.manifestUnknown('unknown packages: a, b', { unknown: ['a', 'b'] });
  assert.equal(err.status, 404);
  assert.deepEqual(errorBody(err), { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'unknown packages: a, b', detail: { unknown: ['a', 'b'] } }] });
  assert.ok(isErrorBody(errorBody(err)));
  assert.equal(errors.unsupported('x').status, 405);
  assert.equal(errors.unavailable('x').status, 503);
});

test('unexpected exceptions become UNKNOWN without leaking their message', () => {
  const err = toRegistryError(new Error('secret internals at /root/x'));
  assert.equal(err.code, 'UNKNOWN');
  assert.equal(err.status, 500);
  assert.ok(!err.message.includes('secret'));
});
