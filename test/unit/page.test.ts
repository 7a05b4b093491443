// The page's pure parts: request parsing and limits (shared/api.ts), the
// in-memory search and the unknown-name check over an index, the build
// event channels and the failure ring, the image summary, and the HTML and
// script the Worker serves.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryError } from '../../shared/errors.ts';
import { API_LIMITS, eventsPath, parseBuildRequest, parseEventsPath, parseSearchQuery, searchPath } from '../../shared/api.ts';
import { PackageIndex } from '../../origin/search/package-index.ts';
import { indexStorageKey } from '../../origin/search/indexes.ts';
import { StreamSlots } from '../../origin/http/stream-slots.ts';
import { BuildChannels, currentBuildChannel, type BuildEvent } from '../../origin/image/build-events.ts';
import { summarizeImage } from '../../origin/image/image-summary.ts';
import { errors } from '../../shared/errors.ts';
import { renderPage, pullCommands } from '../../edge/page/html.ts';
import { CLIENT_SCRIPT } from '../../edge/page/client.ts';
import type { RawPackageIndex } from '../../origin/nix/nix.ts';

function refusal(fn: () => unknown): RegistryError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RegistryError, String(err));
    return err;
  }
  assert.fail('expected a refusal');
}

const RAW: RawPackageIndex = {
  packages: [
    { attrPath: 'git', name: 'git', version: '2.39.5', description: 'Distributed version control system' },
    { attrPath: 'gitui', name: 'gitui', version: '0.22', description: 'Terminal UI for git' },
    { attrPath: 'hello', name: 'hello', version: '2.10', description: 'A program that produces a familiar, friendly greeting' },
    { attrPath: 'python3Packages.requests', name: 'requests', version: '2.28.1', description: 'HTTP library for Python' },
    { attrPath: 'fooBar', name: 'foo-bar', version: '1.0', description: 'x'.repeat(1000) },
  ],
  sets: [
    { path: '', names: ['git', 'gitui', 'hello', 'python3Packages', 'fooBar', 'haskellPackages', 'lib'] },
    { path: 'python3Packages', names: ['requests', 'recurseForDerivations'] },
  ],
};

describe('API requests', () => {
  test('a search query is trimmed, bounded and paged', () => {
    assert.deepEqual(parseSearchQuery(new URLSearchParams('q=  git   ui ')), { q: 'git ui', tag: 'latest', limit: API_LIMITS.defaultLimit, offset: 0 });
    assert.equal(refusal(() => parseSearchQuery(new URLSearchParams({ q: 'a'.repeat(101) }))).status, 400);
    assert.equal(refusal(() => parseSearchQuery(new URLSearchParams({ q: 'a'.repeat(101) }))).code, 'QUERY_INVALID');
    assert.match(refusal(() => parseSearchQuery(new URLSearchParams('limit=101'))).message, /limit must be a whole number from 1 to 100/);
    assert.match(refusal(() => parseSearchQuery(new URLSearchParams('offset=-1'))).message, /offset/);
    assert.match(refusal(() => parseSearchQuery(new URLSearchParams('q=a%00'))).message, /control character/);
    assert.equal(refusal(() => parseSearchQuery(new URLSearchParams('tag=sha256:abc'))).status, 400);
    assert.equal(refusal(() => parseSearchQuery(new URLSearchParams({ tag: 'not a tag' }))).code, 'MANIFEST_UNKNOWN');
  });

  test('equal searches have one canonical path', () => {
    assert.equal(searchPath(parseSearchQuery(new URLSearchParams('limit=5&q=git'))), searchPath(parseSearchQuery(new URLSearchParams('q=git&limit=5&tag=latest'))));
  });

  test('a build request becomes the image name a client would pull', () => {
    const request = parseBuildRequest({ packages: ['python3Packages.requests', 'fooBar'], arch: 'arm64' });
    assert.equal(request.name, 'arm64/python3packages.requests/foobar');
    assert.equal(request.tag, 'latest');
    assert.deepEqual(request.spec.packages, ['foobar', 'python3packages.requests']);
    assert.equal(eventsPath(request.name, request.tag), '/api/builds/arm64/python3packages.requests/foobar:latest/events');
    assert.equal(parseEventsPath(eventsPath(request.name, 'v1'))?.tag, 'v1');
  });

  test('a build request with too many packages, bad names or a bad shape is refused', () => {
    const many = refusal(() => parseBuildRequest({ packages: Array.from({ length: API_LIMITS.maxPackages + 1 }, (_, i) => `p${i}`) }));
    assert.equal(many.status, 400);
    assert.match(many.message, /at most 20 packages, not 21/);
    assert.equal(refusal(() => parseBuildRequest({ packages: ['a b'] })).code, 'NAME_INVALID');
    assert.equal(refusal(() => parseBuildRequest({ packages: [] })).code, 'QUERY_INVALID');
    assert.equal(refusal(() => parseBuildRequest({ packages: 'hello' })).code, 'QUERY_INVALID');
    assert.equal(refusal(() => parseBuildRequest([])).code, 'QUERY_INVALID');
    assert.equal(refusal(() => parseBuildRequest({ packages: ['hello'], arch: 'mips' })).code, 'QUERY_INVALID');
    assert.equal(refusal(() => parseBuildRequest({ packages: ['a'.repeat(200), 'b'.repeat(60)] })).code, 'NAME_INVALID');
  });
});

describe('the package index', () => {
  const index = new PackageIndex(RAW);

  test('ranks the exact attribute first, then prefixes, then substrings, then descriptions', () => {
    assert.deepEqual(index.search('git', 10, 0).packages.map((p) => p.attrPath), ['git', 'gitui']);
    assert.deepEqual(index.search('request', 10, 0).packages.map((p) => p.attrPath), ['python3Packages.requests']);
    assert.deepEqual(index.search('greeting', 10, 0).packages.map((p) => p.attrPath), ['hello']);
    assert.deepEqual(index.search('FOO-BAR', 10, 0).packages.map((p) => p.attrPath), ['fooBar']);
    // Every word must match somewhere.
    assert.deepEqual(index.search('terminal git', 10, 0).packages.map((p) => p.attrPath), ['gitui']);
    assert.equal(index.search('nothing-like-this', 10, 0).total, 0);
  });

  test('pages: total counts every match, limit and offset cut the list', () => {
    const all = index.search('', 2, 0);
    assert.equal(all.total, 5);
    assert.deepEqual(all.packages.map((p) => p.attrPath), ['fooBar', 'git']);
    assert.deepEqual(index.search('', 2, 4).packages.map((p) => p.attrPath), ['python3Packages.requests']);
  });

  test('descriptions are cut to one line’s worth', () => {
    assert.equal(index.search('fooBar', 1, 0).packages[0]!.description.length, 300);
  });

  test('tells names that cannot exist from names only Nix can judge', () => {
    assert.deepEqual(index.unknown(['git', 'nope', 'python3packages.requests', 'python3packages.nope', 'haskellpackages.pandoc', 'lib', 'foobar']), ['nope', 'python3packages.nope']);
  });

  test('is stored under one key per source version', () => {
    assert.match(indexStorageKey('git https://example.com/pkgs@0123'), /^index\/[0-9a-f]{64}\.json$/);
    assert.notEqual(indexStorageKey('a'), indexStorageKey('b'));
    assert.notEqual(indexStorageKey('a', 'x86_64-linux'), indexStorageKey('a', 'aarch64-linux'));
  });
});

describe('build channels', () => {
  test('a late watcher gets the backlog, then live events, and the channel closes with the outcome', async () => {
    const channels = new BuildChannels();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const seen: BuildEvent[] = [];
    const build = channels.track('amd64/hello:latest', async () => {
      currentBuildChannel()!.step('build');
      currentBuildChannel()!.layersPlanned(2);
      currentBuildChannel()!.layerDone(100, true);
      await gate;
      currentBuildChannel()!.layerDone(50, false);
      return 'record';
    });
    channels.get('amd64/hello:latest')!.subscribe((event) => seen.push(event));
    assert.deepEqual(seen.map((e) => e.type), ['step', 'layers', 'layer']);
    release();
    assert.equal(await build, 'record');
    assert.deepEqual(seen.map((e) => e.type), ['step', 'layers', 'layer', 'layer', 'done']);
    assert.deepEqual(seen[3], { type: 'layer', bytes: 50, written: false, done: 2, total: 2, bytesWritten: 100 });
    assert.equal(channels.get('amd64/hello:latest')!.finished, true);
    assert.equal(currentBuildChannel(), undefined);
  });

  test('the backlog is bounded, dropping Nix lines before steps', () => {
    const channels = new BuildChannels({ backlog: 5 });
    const channel = channels.open('k');
    channel.step('build');
    for (let i = 0; i < 20; i++) channel.nix(`line ${i}`);
    const seen: BuildEvent[] = [];
    channel.subscribe((e) => seen.push(e));
    assert.equal(seen.length, 5);
    assert.deepEqual(seen[0], { type: 'step', step: 'build' });
    assert.deepEqual(seen.at(-1), { type: 'nix', line: 'line 19' });
    assert.equal(channel.dropped, 16);
  });

  test('server-side failures go into a bounded ring, newest first; refusals do not', async () => {
    const channels = new BuildChannels({ failures: 3 });
    for (let i = 0; i < 5; i++) {
      await assert.rejects(channels.track(`img${i}:latest`, () => Promise.reject(errors.internal(`nix build failed ${i}`, { nix: 'error: boom' }))));
    }
    await assert.rejects(channels.track('unknown:latest', () => Promise.reject(errors.manifestUnknown('unknown package: x'))));
    await assert.rejects(channels.track('draining:latest', () => Promise.reject(errors.unavailable('shutting down'))));
    assert.deepEqual(channels.failures().map((f) => f.image), ['img4:latest', 'img3:latest', 'img2:latest']);
    assert.deepEqual(channels.failures()[0]!.error, { code: 'UNKNOWN', message: 'nix build failed 4', detail: { nix: 'error: boom' } });
  });

  test('remembers a bounded number of channels, forgetting finished ones first', async () => {
    const channels = new BuildChannels({ channels: 2 });
    channels.open('running');
    await channels.track('done', async () => 1);
    channels.open('new');
    assert.ok(channels.get('running'));
    assert.equal(channels.get('done'), undefined);
    assert.ok(channels.get('new'));
  });
});

test('the image summary adds up the config and the layers, with what each layer holds', () => {
  const manifest = new TextEncoder().encode(JSON.stringify({ config: { size: 100, digest: 'sha256:c' }, layers: [{ size: 1000, digest: 'sha256:a' }, { size: 24, digest: 'sha256:b' }] }));
  const config = new TextEncoder().encode(JSON.stringify({ history: [{ comment: 'store paths: hello' }, { comment: 'symlinks to: hello' }] }));
  assert.deepEqual(summarizeImage('sha256:m' as never, manifest, config), {
    digest: 'sha256:m',
    totalBytes: 1124,
    layers: [
      { digest: 'sha256:a', size: 1000, description: 'store paths: hello' },
      { digest: 'sha256:b', size: 24, description: 'symlinks to: hello' },
    ],
  });
});

describe('the page', () => {
  test('names the host it was served from in the pull commands, plain-HTTP flags only for HTTP', () => {
    assert.deepEqual(pullCommands('r.example.com', 'hello/jq', 'latest', false).map((c) => c.command), [
      'docker pull r.example.com/hello/jq:latest',
      'podman pull r.example.com/hello/jq:latest',
      'skopeo copy docker://r.example.com/hello/jq:latest oci:jq:latest',
    ]);
    assert.match(pullCommands('127.0.0.1:8787', 'hello', 'latest', true)[2]!.command, /--src-tls-verify=false/);
  });

  test('has a search form that works without JavaScript, with labelled inputs and escaped content', () => {
    const html = renderPage({
      host: 'h"<x>',
      insecure: false,
      query: { q: '<b>', tag: 'latest', limit: 1, offset: 0 },
      results: { total: 2, packages: [{ attrPath: 'a<b', name: 'a', version: '1', description: '"quoted" & <tagged>' }] },
      error: null,
    });
    assert.match(html, /<form id="search-form" method="get" action="\/#results" role="search">/);
    assert.match(html, /<label for="q">/);
    assert.match(html, /<input id="q" name="q"/);
    assert.match(html, /<label for="arch"/);
    assert.match(html, /<select id="arch">/);
    assert.doesNotMatch(html, /<b>|h"<x>|<tagged>/);
    assert.match(html, /&#34;quoted&#34; &#38; &#60;tagged&#62;/);
    assert.match(html, /Next 1/);
    assert.match(html, /2 packages match <strong>&#60;b&#62;<\/strong> \(1–1 shown\)/);
  });

  test('the script compiles and contains no template syntax the TypeScript string would swallow', () => {
    assert.doesNotThrow(() => new Function(CLIENT_SCRIPT));
    assert.ok(!CLIENT_SCRIPT.includes('`'));
  });
});

test('event stream places: a few per client and a bounded number in all; each given back once', () => {
  const slots = new StreamSlots({ perClient: 2, total: 3 });
  const a1 = slots.take('a')!;
  const a2 = slots.take('a')!;
  assert.equal(slots.take('a'), null, 'a client past its places');
  const b1 = slots.take('b')!;
  assert.equal(slots.take('c'), null, 'the origin past its places, whoever asks');
  a1();
  a1();
  assert.equal(slots.open, 2, 'a place given back twice counts once');
  assert.ok(slots.take('c'), 'a freed place is anyone’s');
  assert.equal(slots.take('a'), null);
  a2();
  b1();
  assert.equal(slots.open, 1);
  assert.ok(slots.take('a'));
});
