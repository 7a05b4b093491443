// The git source end to end: a real origin builds from a repository served
// over git's dumb HTTP protocol on 127.0.0.1 (made here: commits, a branch,
// tags, a tag that moves), with every git and Nix process it starts noted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import {
  builds, closedPort, commitGreeting, digestOf, git, initRepository, publish, pullManifest, recordProcesses, serveDirectory, tempDir,
  type ProcessRecorder, type StaticServer,
} from '../support/sources.ts';

let root: string;
let work: string;
let bare: string;
let server: StaticServer;
let repoUrl: string;
let processes: ProcessRecorder;
let origin: RunningOrigin;
const commits: Record<string, string> = {};

function gitOrigin(env: Record<string, string>): Promise<RunningOrigin> {
  return startOrigin({ env: { NIXERY_PKGS_PATH: '', NIXERY_PKGS_REPO: repoUrl, ...processes.env, ...env } });
}

before(async () => {
  root = await tempDir('git-source-it-');
  work = join(root, 'work');
  bare = join(root, 'pkgs.git');
  commits.first = await initRepository(work, 'first');
  await git(work, 'tag', 'v1');
  await git(work, 'tag', 'moving');
  await git(work, 'checkout', '-q', '-b', 'feature');
  commits.feature = await commitGreeting(work, 'feature');
  await git(work, 'checkout', '-q', 'main');
  await git(root, 'init', '-q', '--bare', '-b', 'main', bare);
  await publish(work, bare);
  server = await serveDirectory(root);
  repoUrl = `${server.url}/pkgs.git`;
  processes = await recordProcesses();
  origin = await gitOrigin({ NIXERY_REF_TTL: '3600' });
});

after(async () => {
  await origin?.stop();
  await server?.close();
  await processes?.remove();
  if (root) await rm(root, { recursive: true, force: true });
});

test('latest builds the default branch; a branch, a tag and a commit each build the version they name', async () => {
  const latest = await digestOf(origin, 'greeting', 'latest');
  assert.equal(await digestOf(origin, 'greeting', 'main'), latest);
  assert.equal(await digestOf(origin, 'greeting', 'v1'), latest);
  assert.equal(await digestOf(origin, 'greeting', commits.first!), latest);
  const feature = await digestOf(origin, 'greeting', 'feature');
  assert.notEqual(feature, latest);
  // A commit on a branch other than the default one is found too.
  assert.equal(await digestOf(origin, 'greeting', commits.feature!), feature);
  // Two versions, two builds: every other tag named a commit already built.
  assert.equal(await builds(origin), 2);
  const commands = await processes.commands();
  assert.ok(commands.some((c) => c.startsWith('git ls-remote --symref -- ')), 'latest was resolved with git ls-remote');
  assert.ok(commands.some((c) => c.startsWith('nix-build ')), 'Nix built the images');
});

test('a pinned commit is served again without any git or Nix process, and so is a ref within its TTL', async () => {
  await digestOf(origin, 'greeting', commits.first!);
  await digestOf(origin, 'greeting', 'main');
  await processes.clear();
  await digestOf(origin, 'greeting', commits.first!);
  await digestOf(origin, 'greeting', 'main');
  await digestOf(origin, 'greeting', 'latest');
  assert.deepEqual(await processes.commands(), []);
});

test('a tag that moves keeps its image within the TTL and builds the new version once the TTL is over', async () => {
  const shortTtl = await gitOrigin({ NIXERY_REF_TTL: '1' });
  try {
    const before = await digestOf(origin, 'greeting', 'moving');
    assert.equal(await digestOf(shortTtl, 'greeting', 'moving'), before);

    await git(work, 'checkout', '-q', 'main');
    commits.moved = await commitGreeting(work, 'moved');
    await git(work, 'tag', '-f', 'moving');
    await publish(work, bare);

    // Within the TTL: the image the tag had, and git is not asked.
    await processes.clear();
    assert.equal(await digestOf(origin, 'greeting', 'moving'), before);
    assert.deepEqual((await processes.commands()).filter((c) => c.startsWith('git')), []);

    // Past the TTL: the tag is resolved again, to the new commit, and that version is built.
    await sleep(1100);
    const after = await digestOf(shortTtl, 'greeting', 'moving');
    assert.notEqual(after, before);
    assert.ok((await processes.commands()).some((c) => c.startsWith('git ls-remote -- ')), 'the moved tag was resolved again');
    assert.equal(await digestOf(shortTtl, 'greeting', commits.moved!), after);
    assert.equal(await builds(shortTtl), 2);
  } finally {
    await shortTtl.stop();
  }
});

test('an unknown ref or commit answers MANIFEST_UNKNOWN with git\'s or Nix\'s reason, and other images keep being served', async () => {
  const ref = await pullManifest(origin, 'greeting', 'no-such-branch');
  assert.equal(ref.status, 404);
  assert.equal(ref.error?.code, 'MANIFEST_UNKNOWN');
  assert.match(ref.error!.message, /no branch or tag of that name/);
  // Made-up refs cost nothing to send: one asked again within FAILURE_TTL runs no git.
  await processes.clear();
  assert.deepEqual(await pullManifest(origin, 'greeting', 'no-such-branch'), ref);
  assert.deepEqual(await processes.commands(), []);

  const commit = await pullManifest(origin, 'greeting', 'f'.repeat(40));
  assert.equal(commit.status, 404);
  assert.equal(commit.error?.code, 'MANIFEST_UNKNOWN');
  assert.match(commit.error!.message, /cannot fetch the package set: Cannot find Git revision 'f{40}'/);

  assert.equal((await pullManifest(origin, 'greeting', 'latest')).status, 200);
});

test('an unreachable repository answers MANIFEST_UNKNOWN with git\'s reason', async () => {
  const unreachable = await startOrigin({ env: { NIXERY_PKGS_PATH: '', NIXERY_PKGS_REPO: `http://127.0.0.1:${await closedPort()}/pkgs.git` } });
  try {
    const result = await pullManifest(unreachable, 'greeting', 'latest');
    assert.equal(result.status, 404);
    assert.equal(result.error?.code, 'MANIFEST_UNKNOWN');
    assert.match(result.error!.message, /cannot read the package repository: fatal: unable to access .*(Failed to connect|Couldn't connect)/);
  } finally {
    await unreachable.stop();
  }
});

test('a repository given as a local path builds too', async () => {
  const local = await startOrigin({ env: { NIXERY_PKGS_PATH: '', NIXERY_PKGS_REPO: work } });
  try {
    assert.equal(await digestOf(local, 'greeting', 'v1'), await digestOf(origin, 'greeting', 'v1'));
  } finally {
    await local.stop();
  }
});

test('tags that break git\'s ref-name rules are refused before any git or Nix process runs', async () => {
  await processes.clear();
  // Valid registry tags that git refuses, then what the registry grammar refuses first.
  for (const tag of ['main.lock', 'a..b', 'dot.', '--upload-pack=touch%20%2Ftmp%2Fpwned', '..%2F..%2Fetc', 'a%20b', 'main@%7B1%7D', 'x'.repeat(129)]) {
    const result = await pullManifest(origin, 'greeting', tag);
    assert.equal(result.status, 404, tag);
    assert.equal(result.error?.code, 'MANIFEST_UNKNOWN', tag);
  }
  assert.match((await pullManifest(origin, 'greeting', 'main.lock')).error!.message, /not a git ref name: it has a component ending with "\.lock"/);
  assert.deepEqual(await processes.commands(), []);
  assert.equal((await pullManifest(origin, 'greeting', 'latest')).status, 200);
});

test('the tag list names the repository\'s branches and tags, a page at a time, with a Link to the next page', async () => {
  const all = await fetch(`${origin.url}/v2/greeting/tags/list`);
  assert.equal(all.status, 200);
  const tags = ((await all.json()) as { tags: string[] }).tags;
  assert.deepEqual(tags, ['feature', 'latest', 'main', 'moving', 'v1']);

  const pages: string[][] = [];
  let next: string | null = '/v2/greeting/tags/list?n=2';
  while (next !== null) {
    const res = await fetch(`${origin.url}${next}`);
    assert.equal(res.status, 200);
    pages.push(((await res.json()) as { tags: string[] }).tags);
    // `</v2/…?n=2&last=…>; rel="next"`
    next = /^<([^>]+)>; rel="next"$/.exec(res.headers.get('link') ?? '')?.[1] ?? null;
  }
  assert.deepEqual(pages, [['feature', 'latest'], ['main', 'moving'], ['v1']]);
});
