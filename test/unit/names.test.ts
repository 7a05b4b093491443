import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseImageName, validateName, parseReference, canonicalImage, SHELL_PACKAGES } from '../../shared/names.ts';
import { parseRegistryPath, parseRegistryRequest } from '../../shared/routes.ts';
import { RegistryError } from '../../shared/errors.ts';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RegistryError, `expected a RegistryError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected an error');
}

test('the order and repetition of packages in a name do not change the image', () => {
  const a = parseImageName('shell/hello');
  const b = parseImageName('hello/shell/hello');
  assert.deepEqual(a.packages, b.packages);
  assert.equal(canonicalImage(a), canonicalImage(b));
});

test('shell expands to the meta-package members, sorted', () => {
  const spec = parseImageName('shell');
  assert.deepEqual(spec.packages, [...SHELL_PACKAGES].sort());
  assert.ok(parseImageName('shell/coreutils').packages.filter((p) => p === 'coreutils').length === 1);
});

test('an arm64 prefix selects the architecture and is not a package', () => {
  const spec = parseImageName('arm64/hello');
  assert.equal(spec.arch, 'arm64');
  assert.deepEqual(spec.packages, ['hello']);
  assert.equal(parseImageName('hello').arch, 'amd64');
  assert.equal(codeOf(() => parseImageName('arm64')), 'NAME_INVALID');
});

test('dotted components stay whole as attribute paths', () => {
  assert.deepEqual(parseImageName('python3packages.requests/hello').packages, ['hello', 'python3packages.requests']);
});

test('names outside the distribution grammar are refused before anything else runs', () => {
  for (const bad of ['Hello', 'hello/', '/hello', 'he..llo', 'a/-b', 'a//b', 'x'.repeat(256), 'hel lo', 'a$(id)', 'a;b', '..', 'a/../b']) {
    assert.equal(codeOf(() => validateName(bad)), 'NAME_INVALID', bad);
  }
  for (const good of ['hello', 'a.b_c__d--e', 'python3packages.requests', 'shell/git/htop', 'a'.repeat(255)]) {
    assert.equal(validateName(good), good);
  }
});

test('references are tags of the tag grammar or sha256 digests', () => {
  assert.deepEqual(parseReference('latest'), { kind: 'tag', tag: 'latest' });
  assert.equal(parseReference('sha256:' + 'a'.repeat(64)).kind, 'digest');
  assert.equal(codeOf(() => parseReference('sha256:abc')), 'DIGEST_INVALID');
  assert.equal(codeOf(() => parseReference('md5:' + 'a'.repeat(32))), 'DIGEST_INVALID');
  assert.equal(codeOf(() => parseReference('-upload-pack')), 'MANIFEST_UNKNOWN');
  assert.equal(codeOf(() => parseReference('a'.repeat(129))), 'MANIFEST_UNKNOWN');
});

test('a commit tag is spelt one way, lower case, whatever case it came in; other tags keep theirs', () => {
  const commit = 'c0ffee0000000000000000000000000000c0ffee';
  assert.deepEqual(parseReference(commit.toUpperCase()), { kind: 'tag', tag: commit });
  assert.deepEqual(parseReference('C0fFeE0000000000000000000000000000C0FfEe'), { kind: 'tag', tag: commit });
  assert.deepEqual(parseReference('Nixos-Unstable'), { kind: 'tag', tag: 'Nixos-Unstable' });
  assert.deepEqual(parseReference(`${commit}0`), { kind: 'tag', tag: `${commit}0` }, 'not 40 characters: not a commit');
});

test('registry paths parse into routes, and malformed ones into registry errors', () => {
  assert.deepEqual(parseRegistryPath('/v2/'), { kind: 'base' });
  const manifest = parseRegistryPath('/v2/shell/hello/manifests/latest');
  assert.equal(manifest?.kind, 'manifest');
  assert.equal(manifest?.kind === 'manifest' && manifest.name, 'shell/hello');
  const blob = parseRegistryPath(`/v2/hello/blobs/sha256:${'0'.repeat(64)}`);
  assert.equal(blob?.kind, 'blob');
  assert.equal(parseRegistryPath('/healthz'), null);
  assert.equal(codeOf(() => parseRegistryPath('/v2/HELLO/manifests/latest')), 'NAME_INVALID');
  assert.equal(codeOf(() => parseRegistryPath('/v2/hello/blobs/sha256:zz')), 'DIGEST_INVALID');
  assert.equal(codeOf(() => parseRegistryPath('/v2/hello/blobs/uploads/')), 'UNSUPPORTED');
});

test('a request is routed, or refused with the error both the edge and the origin answer', () => {
  assert.equal(parseRegistryRequest('HEAD', '/v2/hello/manifests/latest').kind, 'manifest');
  assert.equal(codeOf(() => parseRegistryRequest('GET', '/v2/hello/manifests/%E0%A4%A')), 'NAME_INVALID');
  assert.equal(codeOf(() => parseRegistryRequest('PUT', '/v2/hello/manifests/latest')), 'UNSUPPORTED');
  assert.equal(codeOf(() => parseRegistryRequest('DELETE', `/v2/hello/blobs/sha256:${'0'.repeat(64)}`)), 'UNSUPPORTED');
  assert.equal(codeOf(() => parseRegistryRequest('GET', '/v2/hello/unknown/thing')), 'NAME_UNKNOWN');
});

test('the referrers route carries a validated name and digest; a malformed digest is DIGEST_INVALID', () => {
  const digest = `sha256:${'b'.repeat(64)}`;
  assert.deepEqual(parseRegistryPath(`/v2/shell/hello/referrers/${digest}`), { kind: 'referrers', name: 'shell/hello', digest });
  assert.throws(() => parseRegistryPath('/v2/hello/referrers/sha256:zz'), (err: unknown) => err instanceof RegistryError && err.code === 'DIGEST_INVALID');
  assert.throws(() => parseRegistryPath(`/v2/Hello/referrers/${digest}`), (err: unknown) => err instanceof RegistryError && err.code === 'NAME_INVALID');
});
