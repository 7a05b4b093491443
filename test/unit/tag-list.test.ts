// The tag list's pagination, as the distribution spec words it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_TAGS_PAGE, nextPageLink, parseTagListQuery, tagListPage, type TagListQuery } from '../../shared/tag-list.ts';
import { RegistryError } from '../../shared/errors.ts';
import { referrersAnswer } from '../../shared/referrers.ts';

const TAGS = ['v2', 'latest', 'v1', 'nixos-24.05', 'v10'];

test('without n or last, every tag comes back in lexical order, with no next page', () => {
  const page = tagListPage('hello', TAGS, {});
  assert.deepEqual(page.body, { name: 'hello', tags: ['latest', 'nixos-24.05', 'v1', 'v10', 'v2'] });
  assert.equal(page.next, null);
});

test('n=0 gives an empty list, as the spec says it MUST', () => {
  assert.deepEqual(tagListPage('hello', TAGS, { n: 0 }), { body: { name: 'hello', tags: [] }, next: null });
});

test('n caps the page and names the next one; last resumes after that tag; pages cover every tag once', () => {
  const first = tagListPage('hello', TAGS, { n: 2 });
  assert.deepEqual(first.body.tags, ['latest', 'nixos-24.05']);
  assert.deepEqual(first.next, { n: 2, last: 'nixos-24.05' });
  assert.equal(nextPageLink('hello', first.next!), '</v2/hello/tags/list?n=2&last=nixos-24.05>; rel="next"');
  const seen = [...first.body.tags];
  let next: TagListQuery | null = first.next;
  while (next) {
    const page = tagListPage('hello', TAGS, next);
    seen.push(...page.body.tags);
    next = page.next;
  }
  assert.deepEqual(seen, ['latest', 'nixos-24.05', 'v1', 'v10', 'v2']);
});

test('last past the end, or a last that is not a tag, still pages by lexical position', () => {
  assert.deepEqual(tagListPage('hello', TAGS, { last: 'zzz' }).body.tags, []);
  assert.deepEqual(tagListPage('hello', TAGS, { last: 'v1' }).body.tags, ['v10', 'v2']);
  assert.deepEqual(tagListPage('hello', TAGS, { last: 'm' }).body.tags, ['nixos-24.05', 'v1', 'v10', 'v2']);
});

test('an n larger than the page limit is capped, and the rest is on the next page', () => {
  const many = Array.from({ length: MAX_TAGS_PAGE + 5 }, (_, i) => `t${String(i).padStart(5, '0')}`);
  const page = tagListPage('hello', many, { n: 999_999 });
  assert.equal(page.body.tags.length, MAX_TAGS_PAGE);
  assert.equal(page.next?.last, many[MAX_TAGS_PAGE - 1]);
});

test('the query is read from the URL; a malformed n is PAGINATION_NUMBER_INVALID (400)', () => {
  assert.deepEqual(parseTagListQuery(new URLSearchParams('n=3&last=v1')), { n: 3, last: 'v1' });
  assert.deepEqual(parseTagListQuery(new URLSearchParams('')), {});
  for (const bad of ['-1', 'abc', '1.5', '', '9999999999']) {
    assert.throws(() => parseTagListQuery(new URLSearchParams({ n: bad })), (err: unknown) => err instanceof RegistryError && err.code === 'PAGINATION_NUMBER_INVALID' && err.status === 400, bad);
  }
});

test('the referrers answer is an empty OCI index, and says when an artifactType filter was applied', () => {
  const plain = referrersAnswer(null);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(plain.body)), { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] });
  assert.equal(plain.headers['Content-Type'], 'application/vnd.oci.image.index.v1+json');
  assert.equal(plain.headers['Content-Length'], String(plain.body.length));
  assert.equal(plain.headers['OCI-Filters-Applied'], undefined);
  assert.equal(referrersAnswer('application/spdx+json').headers['OCI-Filters-Applied'], 'artifactType');
});
