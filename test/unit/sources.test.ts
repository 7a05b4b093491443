// The package sources as objects: what each tag resolves to, what is cached
// under which key, and what is refused before any process runs.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryError } from '../../shared/errors.ts';
import { ChannelSource, isChannelName, nixPrefetcher, type TarballPrefetcher } from '../../origin/sources/channel.ts';
import { GitSource, type GitRunner } from '../../origin/sources/git.ts';
import { TtlCache } from '../../origin/sources/ttl-cache.ts';
import { PathSource } from '../../origin/sources/path.ts';
import { NixError, NixFetchError, type NixSource } from '../../origin/nix/nix.ts';
import { redactCredentials } from '../../origin/sources/redact.ts';
import { ConfigError, readConfig } from '../../origin/config.ts';
import { tagWorkGate, type TagWorkGate } from '../../origin/nix/tag-work-gate.ts';
import { PackageIndexes, type IndexesOptions } from '../../origin/search/indexes.ts';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { pino } from 'pino';
import { NixAdmission } from '../../origin/nix/admission.ts';
import { FailureMemory } from '../../origin/image/failure-memory.ts';
import { commitGreeting, git, initRepository, tempDir } from '../support/sources.ts';

const COMMIT = '0123456789abcdef0123456789abcdef01234567';

async function refusal(promise: Promise<unknown>): Promise<RegistryError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RegistryError, `expected a registry error, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the promise to be refused');
}

test('a TTL cache reuses a resolution until it expires, then resolves again', async () => {
  let now = 0;
  let loads = 0;
  const cache = new TtlCache<number>(10, { now: () => now });
  const load = async () => ++loads;
  assert.equal(await cache.get('k', load), 1);
  now = 9_999;
  assert.equal(await cache.get('k', load), 1);
  now = 10_001;
  assert.equal(await cache.get('k', load), 2);
  assert.equal(await cache.get('other', load), 3);
});

test('a TTL cache shares one resolution between concurrent callers and remembers no failure', async () => {
  let loads = 0;
  const cache = new TtlCache<number>(60);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const slow = async () => {
    loads++;
    await gate;
    return 7;
  };
  const both = Promise.all([cache.get('k', slow), cache.get('k', slow)]);
  release();
  assert.deepEqual(await both, [7, 7]);
  assert.equal(loads, 1);

  await assert.rejects(cache.get('bad', async () => Promise.reject(new Error('down'))), /down/);
  assert.equal(await cache.get('bad', async () => 1), 1);
});

test('a TTL of zero resolves on every lookup', async () => {
  let loads = 0;
  const cache = new TtlCache<number>(0);
  await cache.get('k', async () => ++loads);
  await cache.get('k', async () => ++loads);
  assert.equal(loads, 2);
});

test('channel names follow nixpkgs: nixos- or nixpkgs-, unstable or YY.MM, an optional variant', () => {
  for (const name of ['nixos-unstable', 'nixos-unstable-small', 'nixpkgs-unstable', 'nixos-24.05', 'nixos-24.05-small', 'nixpkgs-24.05-darwin', 'nixos-18.03-aarch64']) {
    assert.ok(isChannelName(name), name);
  }
  for (const name of ['latest', 'nixos', 'nixos-24.5', 'nixos-2024.05', 'nixos-24.05-big', 'nixos-unstable.tar.gz', 'NixOS-unstable', 'release-24.05', 'master']) {
    assert.ok(!isChannelName(name), name);
  }
});

function channelSource(prefetch: TarballPrefetcher, channel = 'nixos-unstable', gate?: TagWorkGate) {
  return new ChannelSource({ channel, archiveBaseUrl: 'https://archive.example/nixpkgs/', ttlSeconds: 3600, timeoutSeconds: 5, prefetch, ...(gate ? { gate } : {}) });
}

/** The origin's gate (main.ts) over one evaluation slot and no waiting place, failures remembered for a minute. */
function originGate(): TagWorkGate {
  const admission = new NixAdmission({ maxEvaluations: 1, maxBuilds: 1, queueLength: 0, queueWaitSeconds: 5, clientShare: null });
  return tagWorkGate(admission, new FailureMemory({ ttlSeconds: 60 }), () => 'a client');
}

test('behind the origin\'s gate, a channel that cannot be fetched is fetched once per FAILURE_TTL, and a prefetch takes an evaluation slot: past the queue, 429', { timeout: 10_000 }, async () => {
  const fetched: string[] = [];
  let release!: () => void;
  const source = channelSource(
    async (url) => {
      fetched.push(url);
      if (url.includes('nixos-99.11')) throw new NixFetchError(new NixError('nix-instantiate failed with exit code 1', "error: unable to download '…': HTTP error 404", false, 1));
      await new Promise<void>((resolve) => (release = resolve));
      return 'sha256:bbbb';
    },
    'nixos-unstable',
    originGate(),
  );
  const first = await refusal(source.resolve('nixos-99.11'));
  assert.equal(first.code, 'MANIFEST_UNKNOWN');
  assert.equal(first.headers['Cache-Control'], 'public, max-age=60', 'the edge may keep it as long');
  const again = await refusal(source.resolve('nixos-99.11'));
  assert.equal(again.message, first.message);
  assert.equal(fetched.length, 1, 'a made-up channel asked again runs nothing');

  // A slow prefetch holds the one evaluation slot: another channel is refused, and not remembered.
  const slow = source.resolve('nixos-24.05');
  const busy = await refusal(source.resolve('nixos-23.11'));
  assert.equal(busy.status, 429);
  assert.equal(busy.code, 'TOOMANYREQUESTS');
  release();
  assert.equal((await slow).cacheKey, 'tarball sha256:bbbb');
  const later = source.resolve('nixos-23.11');
  while (!fetched.some((url) => url.includes('nixos-23.11'))) await new Promise((resolve) => setImmediate(resolve));
  release();
  assert.equal((await later).cacheKey, 'tarball sha256:bbbb');
  assert.equal(fetched.filter((url) => url.includes('nixos-23.11')).length, 1, 'fetched once its turn came');
});

test('a channel source builds latest from its channel, keyed by the hash of what the tarball held', async () => {
  const fetched: string[] = [];
  const source = channelSource(async (url) => (fetched.push(url), 'sha256:aaaa'));
  const resolved = await source.resolve('latest');
  assert.deepEqual(resolved.nix, { type: 'tarball', url: 'https://archive.example/nixpkgs/nixos-unstable.tar.gz', sha256: 'sha256:aaaa' });
  assert.equal(resolved.cacheKey, 'tarball sha256:aaaa');
  // The same channel by name is the same resolution, and within the TTL nothing is fetched again.
  assert.deepEqual(await source.resolve('nixos-unstable'), resolved);
  assert.deepEqual(fetched, ['https://archive.example/nixpkgs/nixos-unstable.tar.gz']);
});

test('a prefetch whose downloaded path was collected before its hash was read fetches and hashes once more; failed fetches and timeouts are not retried', async () => {
  // Stand-ins for nix-instantiate and nix-store --query --hash: a collection between the real two cannot be timed here.
  const calls: string[] = [];
  const notValid = () => new NixError('nix-store failed with exit code 1', "error: path '/nix/store/aaaa-source' is not valid", false, 1);
  let hashFailures = 1;
  const prefetch = nixPrefetcher({
    fetch: async () => (calls.push('fetch'), '/nix/store/aaaa-source'),
    hash: async () => {
      calls.push('hash');
      if (hashFailures-- > 0) throw notValid();
      return 'sha256:bbbb';
    },
  });
  assert.equal(await prefetch('https://archive.example/nixos-unstable.tar.gz', { ttlSeconds: 60, timeoutSeconds: 5 }), 'sha256:bbbb');
  assert.deepEqual(calls, ['fetch', 'hash', 'fetch', 'hash']);

  hashFailures = 5;
  calls.length = 0;
  await assert.rejects(prefetch('https://archive.example/x.tar.gz', { ttlSeconds: 60, timeoutSeconds: 5 }), /exit code 1/);
  assert.deepEqual(calls, ['fetch', 'hash', 'fetch', 'hash'], 'once more, not more');

  calls.length = 0;
  const timedOut = nixPrefetcher({
    fetch: async () => (calls.push('fetch'), '/nix/store/aaaa-source'),
    hash: async () => (calls.push('hash'), Promise.reject(new NixError('nix-store timed out after 5 s', '', true))),
  });
  await assert.rejects(timedOut('https://archive.example/x.tar.gz', { ttlSeconds: 60, timeoutSeconds: 5 }), /timed out/);
  const failedFetch = nixPrefetcher({
    fetch: async () => (calls.push('fetch'), Promise.reject(new NixFetchError(new NixError('nix-instantiate failed with exit code 1', 'error: unable to download', false, 1)))),
    hash: async () => assert.fail('no hash without a fetch'),
  });
  await assert.rejects(failedFetch('https://archive.example/x.tar.gz', { ttlSeconds: 60, timeoutSeconds: 5 }), NixFetchError);
  assert.deepEqual(calls, ['fetch', 'hash', 'fetch']);
});

test('a channel source pins a commit tag to its tarball URL without fetching anything', async () => {
  const source = channelSource(async () => assert.fail('a commit must not be fetched to be resolved'));
  const resolved = await source.resolve(COMMIT.toUpperCase());
  assert.deepEqual(resolved.nix, { type: 'tarball', url: `https://archive.example/nixpkgs/${COMMIT}.tar.gz` });
  assert.equal(resolved.cacheKey, `tarball https://archive.example/nixpkgs/${COMMIT}.tar.gz`);
});

test('a channel source configured with a commit serves latest pinned to that commit', async () => {
  const source = channelSource(async () => assert.fail('nothing to fetch'), COMMIT);
  assert.equal((await source.resolve('latest')).cacheKey, `tarball https://archive.example/nixpkgs/${COMMIT}.tar.gz`);
});

test('a channel source re-resolves a channel once its TTL is over', async () => {
  let hash = 'sha256:old';
  const source = new ChannelSource({ channel: 'nixos-unstable', archiveBaseUrl: 'file:///a', ttlSeconds: 0, timeoutSeconds: 5, prefetch: async () => hash });
  assert.equal((await source.resolve('latest')).cacheKey, 'tarball sha256:old');
  hash = 'sha256:new';
  assert.equal((await source.resolve('latest')).cacheKey, 'tarball sha256:new');
});

test('a channel source refuses tags that name no nixpkgs version, before fetching', async () => {
  const source = channelSource(async () => assert.fail('nothing may be fetched for an invalid tag'));
  for (const tag of ['v1', 'main', 'nixos-24.05.tar.gz', '../../etc/passwd', '--help', 'a'.repeat(300), COMMIT.slice(1)]) {
    const err = await refusal(source.resolve(tag));
    assert.equal(err.code, 'MANIFEST_UNKNOWN', tag);
    assert.match(err.message, /names no nixpkgs version/);
  }
});

test('a channel that cannot be fetched answers MANIFEST_UNKNOWN with Nix\'s reason, and is tried again next time', async () => {
  let calls = 0;
  const source = channelSource(async () => {
    calls++;
    throw new NixFetchError(new NixError('nix-instantiate failed with exit code 1', "error: unable to download 'https://archive.example/nixpkgs/nixos-99.11.tar.gz': HTTP error 404", false, 1));
  });
  const err = await refusal(source.resolve('nixos-99.11'));
  assert.equal(err.code, 'MANIFEST_UNKNOWN');
  assert.match(err.message, /cannot fetch channel nixos-99\.11: unable to download .*HTTP error 404/);
  await refusal(source.resolve('nixos-99.11'));
  assert.equal(calls, 2);
});

// A real repository for the git source: main (v1), a branch, tags.
let repo: string;
const commits: Record<string, string> = {};

before(async () => {
  repo = await tempDir('git-source-');
  commits.first = await initRepository(repo, 'first');
  await git(repo, 'tag', 'v1');
  await git(repo, 'tag', '-a', 'v1-annotated', '-m', 'annotated');
  await git(repo, 'checkout', '-q', '-b', 'feature');
  commits.feature = await commitGreeting(repo, 'feature');
  // A tag named like a branch: git prefers the tag.
  await git(repo, 'tag', 'feature', commits.first!);
  await git(repo, 'checkout', '-q', 'main');
  commits.main = await commitGreeting(repo, 'second');
});
after(async () => {
  if (repo) await rm(repo, { recursive: true, force: true });
});

/** A git source whose git invocations are counted (and really run). */
function gitSource(options: { repo?: string; ttlSeconds?: number; gate?: TagWorkGate } = {}) {
  const calls: string[][] = [];
  const runGit: GitRunner = async (args, runOptions) => {
    calls.push([...args]);
    return (await execa('git', args, { timeout: runOptions.timeoutSeconds * 1000, env: { GIT_TERMINAL_PROMPT: '0' } })).stdout;
  };
  const source = new GitSource({ repo: options.repo ?? repo, ttlSeconds: options.ttlSeconds ?? 3600, timeoutSeconds: 10, runGit, ...(options.gate ? { gate: options.gate } : {}) });
  return { source, calls };
}

test('a git source resolves latest to the default branch and pins Nix to that commit on that ref', async () => {
  const { source, calls } = gitSource();
  const resolved = await source.resolve('latest');
  assert.deepEqual(resolved.nix, { type: 'git', url: repo, rev: commits.main, ref: 'refs/heads/main' });
  assert.equal(resolved.cacheKey, `git ${repo} ${commits.main}`);
  assert.deepEqual(calls, [['ls-remote', '--symref', '--', repo, 'HEAD']]);
});

test('a git source lists latest and every branch and tag that can be named as a registry tag, with one git call per TTL', async () => {
  const { source, calls } = gitSource();
  await git(repo, 'branch', 'team/not-a-registry-tag');
  try {
    const tags = await source.listTags();
    assert.deepEqual([...tags].sort(), ['feature', 'latest', 'main', 'v1', 'v1-annotated']);
    await source.listTags();
    assert.deepEqual(calls, [['ls-remote', '--heads', '--tags', '--', repo]]);
  } finally {
    await git(repo, 'branch', '-D', 'team/not-a-registry-tag');
  }
});

test('a path source has one version, latest: it lists only that, and any other tag is MANIFEST_UNKNOWN', async () => {
  const source = new PathSource('/srv/pkgs');
  assert.deepEqual(await source.listTags(), ['latest']);
  assert.deepEqual((await source.resolve('latest')).nix, { type: 'path', path: '/srv/pkgs' });
  const err = await refusal(source.resolve('missing-7336nswwaxneuubcd4fs'));
  assert.equal(err.code, 'MANIFEST_UNKNOWN');
  assert.match(err.message, /local package set, whose one version is "latest"/);
});

test('a channel source lists latest alone: which channels exist is the network\'s to say', async () => {
  const source = new ChannelSource({ channel: 'nixos-unstable', archiveBaseUrl: 'http://127.0.0.1:1/archive', ttlSeconds: 60, timeoutSeconds: 5, prefetch: async () => assert.fail('no fetch for a tag list') });
  assert.deepEqual(await source.listTags(), ['latest']);
});

test('a git source resolves branches and tags, peels annotated tags, and prefers a tag to a branch as git does', async () => {
  const { source } = gitSource();
  assert.deepEqual((await source.resolve('main')).nix, { type: 'git', url: repo, rev: commits.main, ref: 'refs/heads/main' });
  assert.deepEqual((await source.resolve('v1')).nix, { type: 'git', url: repo, rev: commits.first, ref: 'refs/tags/v1' });
  assert.deepEqual((await source.resolve('v1-annotated')).nix, { type: 'git', url: repo, rev: commits.first, ref: 'refs/tags/v1-annotated' });
  assert.deepEqual((await source.resolve('feature')).nix, { type: 'git', url: repo, rev: commits.first, ref: 'refs/tags/feature' });
});

test('a git source pins a commit tag without running git, letting Nix search every ref', async () => {
  const { source, calls } = gitSource();
  const resolved = await source.resolve(commits.feature!.toUpperCase());
  assert.deepEqual(resolved.nix, { type: 'git', url: repo, rev: commits.feature, allRefs: true });
  assert.equal(resolved.cacheKey, `git ${repo} ${commits.feature}`);
  assert.equal(calls.length, 0);
});

test('a git source asks git again for a moving ref only once its TTL is over', async () => {
  const cached = gitSource({ ttlSeconds: 3600 });
  await cached.source.resolve('main');
  await cached.source.resolve('main');
  assert.equal(cached.calls.length, 1);

  const fresh = gitSource({ ttlSeconds: 0 });
  await fresh.source.resolve('main');
  await fresh.source.resolve('main');
  assert.equal(fresh.calls.length, 2);
});

test('hostile tags are refused by the git source before any git process runs', async () => {
  const { source, calls } = gitSource();
  const hostile = ['--upload-pack=touch /tmp/pwned', '-c', '../../etc/passwd', 'a b', 'main@{1}', 'main.lock', '.hidden', 'x'.repeat(10_000), 'a\nb', 'a:b', 'a~1', ''];
  for (const tag of hostile) {
    const err = await refusal(source.resolve(tag));
    assert.equal(err.code, 'MANIFEST_UNKNOWN', JSON.stringify(tag));
    assert.match(err.message, /is not a git ref name/);
    assert.ok(err.message.length < 400, 'a very long tag is not echoed whole');
  }
  assert.equal(calls.length, 0);
});

test('behind the origin\'s gate, a ref the repository does not have is asked of git once per FAILURE_TTL', async () => {
  const { source, calls } = gitSource({ gate: originGate() });
  const first = await refusal(source.resolve('no-such-branch'));
  assert.equal(first.code, 'MANIFEST_UNKNOWN');
  assert.equal(first.headers['Cache-Control'], 'public, max-age=60');
  await refusal(source.resolve('no-such-branch'));
  assert.equal(calls.length, 1, calls.map((c) => c.join(' ')).join('\n'));
  // A ref that exists resolves through the same gate.
  assert.equal((await source.resolve('v1')).nix.type, 'git');
  assert.equal(calls.length, 2);
});

test('behind the origin\'s gate, a ref\'s remembered failure is its own: pulling a tag named like the tag list\'s key leaves the list alone', async () => {
  const { source } = gitSource({ gate: originGate() });
  for (const tag of ['refs', 'list', 'list-of-refs']) assert.equal((await refusal(source.resolve(tag))).code, 'MANIFEST_UNKNOWN', tag);
  assert.ok((await source.listTags()).includes('v1'));
});

test('behind the origin\'s gate, the tag list of a repository that cannot be read asks git once per FAILURE_TTL', async () => {
  const { source, calls } = gitSource({ repo: join(repo, 'not-a-repository'), gate: originGate() });
  assert.equal((await refusal(source.listTags())).code, 'MANIFEST_UNKNOWN');
  assert.equal((await refusal(source.listTags())).code, 'MANIFEST_UNKNOWN');
  assert.equal(calls.length, 1);
});

test('a ref the repository does not have answers MANIFEST_UNKNOWN naming it', async () => {
  const { source } = gitSource();
  const err = await refusal(source.resolve('no-such-branch'));
  assert.equal(err.code, 'MANIFEST_UNKNOWN');
  assert.match(err.message, /"no-such-branch": no branch or tag of that name/);
});

test('an unreachable repository answers MANIFEST_UNKNOWN with git\'s reason', async () => {
  const { source } = gitSource({ repo: join(repo, 'not-a-repository') });
  const err = await refusal(source.resolve('latest'));
  assert.equal(err.code, 'MANIFEST_UNKNOWN');
  assert.match(err.message, /cannot read the package repository: fatal: .*not-a-repository/);
});

test('credentials in a repository URL never appear in descriptions or errors', () => {
  assert.equal(redactCredentials("fatal: unable to access 'https://user:s3cret@git.example/repo.git/': 403"), "fatal: unable to access 'https://***@git.example/repo.git/': 403");
  const source = new GitSource({ repo: 'https://token@git.example/pkgs.git', ttlSeconds: 60, timeoutSeconds: 5 });
  assert.equal(source.description, 'git https://***@git.example/pkgs.git');
  assert.equal(redactCredentials('git@github.com:org/pkgs.git'), 'git@github.com:org/pkgs.git');
});

test('configuration: the channel source is the default, with Nixery\'s archive and a one-hour TTL', () => {
  assert.deepEqual(readConfig({}).source, {
    type: 'channel',
    channel: 'nixos-unstable',
    archiveBaseUrl: 'https://github.com/NixOS/nixpkgs/archive',
    ttlSeconds: 3600,
    timeoutSeconds: 60,
  });
  assert.deepEqual(
    readConfig({ NIXERY_CHANNEL: 'nixos-24.05', NIXERY_CHANNEL_ARCHIVE_URL: 'file:///srv/archive', NIXERY_CHANNEL_TTL: '0', NIXERY_RESOLVE_TIMEOUT: '5' }).source,
    { type: 'channel', channel: 'nixos-24.05', archiveBaseUrl: 'file:///srv/archive', ttlSeconds: 0, timeoutSeconds: 5 },
  );
});

test('configuration: a git repository takes a ref TTL, and a local path is made absolute', () => {
  assert.deepEqual(readConfig({ NIXERY_PKGS_REPO: 'https://git.example/pkgs.git', NIXERY_REF_TTL: '5' }).source, {
    type: 'git',
    repo: 'https://git.example/pkgs.git',
    ttlSeconds: 5,
    timeoutSeconds: 60,
  });
  assert.equal((readConfig({ NIXERY_PKGS_REPO: 'git@github.com:org/pkgs.git' }).source as { repo: string }).repo, 'git@github.com:org/pkgs.git');
  assert.equal((readConfig({ NIXERY_PKGS_REPO: 'relative/pkgs' }).source as { repo: string }).repo, join(process.cwd(), 'relative/pkgs'));
});

test('configuration: invalid source settings stop start-up naming the variable', () => {
  const cases: [Record<string, string>, string][] = [
    [{ NIXERY_CHANNEL: 'nixos-unstable', NIXERY_PKGS_REPO: 'https://git.example/x.git' }, 'NIXERY_PKGS_REPO, NIXERY_CHANNEL'],
    [{ NIXERY_CHANNEL: '../../etc' }, 'NIXERY_CHANNEL'],
    [{ NIXERY_CHANNEL: 'nixos unstable' }, 'NIXERY_CHANNEL'],
    [{ NIXERY_CHANNEL_ARCHIVE_URL: 'ftp://mirror.example/' }, 'NIXERY_CHANNEL_ARCHIVE_URL'],
    [{ NIXERY_CHANNEL_TTL: '-1' }, 'NIXERY_CHANNEL_TTL'],
    [{ NIXERY_PKGS_REPO: 'https://git.example/x.git', NIXERY_REF_TTL: 'soon' }, 'NIXERY_REF_TTL'],
    [{ NIXERY_PKGS_REPO: '--upload-pack=evil' }, 'NIXERY_PKGS_REPO'],
    [{ NIXERY_RESOLVE_TIMEOUT: '0' }, 'NIXERY_RESOLVE_TIMEOUT'],
  ];
  for (const [env, variable] of cases) {
    assert.throws(() => readConfig(env), (err: unknown) => err instanceof ConfigError && err.variable === variable, JSON.stringify(env));
  }
});

/** Filesystem storage in a directory of its own, removed after the test. */
async function testStorage(t: TestContext): Promise<FilesystemStorage> {
  const root = await tempDir('indexes-storage-');
  t.after(() => rm(root, { recursive: true, force: true }));
  const storage = new FilesystemStorage(root);
  await storage.init();
  return storage;
}

/** Indexes of commits of a channel source (no process resolves a commit), over `storage`, with a fake evaluation. */
function commitIndexes(storage: FilesystemStorage, options: Pick<IndexesOptions, 'evaluate' | 'gate' | 'maxStored'>): PackageIndexes {
  const source = channelSource(async () => assert.fail('a commit needs no prefetch'));
  return new PackageIndexes({ source, storage, nix: { timeoutSeconds: 5 }, log: pino({ level: 'silent' }), ...options });
}

/** The commit a fake evaluation was asked for: the tarball URL's file name. */
const commitOf = (source: NixSource) => (source as { url: string }).url.slice(-47, -7);

const EMPTY_INDEX = { packages: [], sets: [{ path: '', names: [] }] };

test('behind the origin\'s gate, a search index is loaded (evaluated, or read back) in an evaluation slot, and one that fails is evaluated once per FAILURE_TTL', { timeout: 10_000 }, async (t) => {
  const storage = await testStorage(t);
  const evaluated: string[] = [];
  let release!: () => void;
  const gate = originGate();
  const indexes = commitIndexes(storage, {
    gate,
    evaluate: async (source) => {
      const commit = commitOf(source);
      evaluated.push(commit);
      if (commit.includes('dead')) throw new NixFetchError(new NixError('nix-instantiate failed with exit code 1', "error: unable to download '…': HTTP error 404", false, 1));
      await new Promise<void>((resolve) => (release = resolve));
      return EMPTY_INDEX;
    },
  });
  const missing = 'dead'.repeat(10);
  const first = await refusal(indexes.forTag(missing));
  assert.equal(first.code, 'MANIFEST_UNKNOWN');
  assert.equal(first.headers['Cache-Control'], 'public, max-age=60');
  await refusal(indexes.forTag(missing));
  assert.equal(evaluated.length, 1, 'a commit that is not there is asked of Nix once');

  // One evaluation holds the one slot: an index of another commit is refused, not started.
  const slow = indexes.forTag('a'.repeat(40));
  while (evaluated.length < 2) await new Promise((resolve) => setImmediate(resolve));
  const busy = await refusal(indexes.forTag('b'.repeat(40)));
  assert.equal(busy.status, 429);
  assert.equal(evaluated.length, 2);
  release();
  assert.deepEqual((await slow).search('', 10, 0).total, 0);

  // Read back from storage by an origin with empty memory: through the same slot.
  const restarted = commitIndexes(storage, { gate, evaluate: async () => assert.fail('a stored index is not evaluated again') });
  const held = indexes.forTag('c'.repeat(40));
  while (evaluated.length < 3) await new Promise((resolve) => setImmediate(resolve));
  assert.equal((await refusal(restarted.forTag('a'.repeat(40)))).status, 429);
  release();
  await held;
  assert.equal((await restarted.forTag('a'.repeat(40))).search('', 10, 0).total, 0);
});

test('stored search indexes are bounded in number: past the bound the least lately asked for go, and one asked for again is evaluated again', { timeout: 10_000 }, async (t) => {
  const storage = await testStorage(t);
  const evaluated: string[] = [];
  // Each call is a fresh origin: memory empty, storage shared.
  const indexes = () =>
    commitIndexes(storage, {
      maxStored: 2,
      evaluate: async (source) => {
        evaluated.push(commitOf(source));
        return EMPTY_INDEX;
      },
    });
  const first = indexes();
  const [a, b, c] = ['a', 'b', 'c'].map((x) => x.repeat(40)) as [string, string, string];
  for (const commit of [a, b, a, c]) {
    await first.forTag(commit);
    // Written a moment apart, so "oldest written" is well defined on any file system.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const stored = [];
  for await (const object of storage.list(STORAGE_KEYS.index.prefix)) stored.push(object.key);
  assert.equal(stored.length, 2);
  // a was written first but asked for again after b: b went. A fresh origin (no memory) reads a and c
  // back, and evaluates b again.
  const second = indexes();
  await second.forTag(a);
  await second.forTag(c);
  assert.deepEqual(evaluated, [a, b, c]);
  await second.forTag(b);
  assert.deepEqual(evaluated, [a, b, c, b]);
});
