// The page's JSON API on a real origin with real Nix, every Nix and git
// process it starts noted (recordProcesses): the index is evaluated once per
// source version and a search never runs Nix; bad input gets a clear 4xx and
// no Nix at all; a build started from the API streams its progress and its
// outcome, failures land in /api/failures, and a pull afterwards builds
// nothing. A git source's index is stored and read back after a restart.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { deferrer } from '../support/cleanup.ts';
import { startOpsOrigin } from '../support/ops.ts';
import { builds, git, initRepository, publish, pullManifest, recordProcesses, serveDirectory, tempDir, type ProcessRecorder } from '../support/sources.ts';
import { API_LIMITS } from '../../shared/api.ts';

interface ApiError {
  code: string;
  message: string;
  detail: unknown;
}

async function errorOf(res: Response): Promise<ApiError> {
  const body = (await res.json()) as { errors: ApiError[] };
  assert.equal(body.errors.length, 1, JSON.stringify(body));
  return body.errors[0]!;
}

function postBuild(origin: RunningOrigin, body: unknown): Promise<Response> {
  return fetch(`${origin.url}/api/builds`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

/** Reads a server-sent event stream to its end: the events' names and data, in order. */
async function readEvents(url: string): Promise<{ event: string; data: Record<string, unknown> }[]> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.includes('event: '))
    .map((block) => ({
      event: /^event: (.+)$/m.exec(block)![1]!,
      data: JSON.parse(/^data: (.+)$/m.exec(block)![1]!) as Record<string, unknown>,
    }));
}

const nixCommands = (commands: string[]) => commands.filter((c) => c.startsWith('nix'));

describe('the page API on an origin building the bundled package set', () => {
  let processes: ProcessRecorder;
  let origin: RunningOrigin;

  before(async () => {
    processes = await recordProcesses();
    origin = await startOrigin({ env: processes.env });
  });
  after(async () => {
    await origin?.stop();
    await processes?.remove();
  });

  test('the first search evaluates the index once; later searches run no Nix', { timeout: 120_000 }, async () => {
    await processes.clear();
    const first = await fetch(`${origin.url}/api/search?q=hello`);
    assert.equal(first.status, 200);
    const body = (await first.json()) as { total: number; packages: { attrPath: string; version: string; description: string }[] };
    assert.equal(body.packages[0]!.attrPath, 'hello');
    assert.equal(body.packages[0]!.version, '2.10');
    assert.match(body.packages[0]!.description, /greeting/);
    const evaluated = nixCommands(await processes.commands());
    assert.equal(evaluated.filter((c) => c.includes('index.nix')).length, 1, evaluated.join('\n'));

    await processes.clear();
    const nested = (await (await fetch(`${origin.url}/api/search?q=requests`)).json()) as { packages: { attrPath: string }[] };
    assert.deepEqual(nested.packages.map((p) => p.attrPath), ['python3Packages.requests']);
    const paged = (await (await fetch(`${origin.url}/api/search?q=&limit=3&offset=2`)).json()) as { total: number; packages: unknown[] };
    assert.equal(paged.packages.length, 3);
    assert.ok(paged.total > 20);
    // Attributes that throw are left out, not fatal.
    const removed = (await (await fetch(`${origin.url}/api/search?q=removedPackage`)).json()) as { total: number };
    assert.equal(removed.total, 0);
    assert.deepEqual(nixCommands(await processes.commands()), []);
  });

  test('bad input gets a clear 4xx in the registry format and runs no Nix', { timeout: 120_000 }, async () => {
    await fetch(`${origin.url}/api/search?q=warm`);
    await processes.clear();

    const huge = await fetch(`${origin.url}/api/search?q=${'x'.repeat(4000)}`);
    assert.ok(huge.status === 400 || huge.status === 414, String(huge.status));
    if (huge.status === 400) assert.equal((await errorOf(huge)).code, 'QUERY_INVALID');

    const unknown = await postBuild(origin, { packages: ['hello', 'noSuchPackage', 'python3Packages.noSuchModule'] });
    assert.equal(unknown.status, 404);
    const unknownError = await errorOf(unknown);
    assert.equal(unknownError.code, 'MANIFEST_UNKNOWN');
    assert.equal(unknownError.message, 'unknown packages: nosuchpackage, python3packages.nosuchmodule');
    assert.deepEqual((unknownError.detail as { unknown: string[] }).unknown, ['nosuchpackage', 'python3packages.nosuchmodule']);

    const many = await postBuild(origin, { packages: Array.from({ length: API_LIMITS.maxPackages + 1 }, (_, i) => `p${i}`) });
    assert.equal(many.status, 400);
    assert.match((await errorOf(many)).message, /at most 20 packages/);

    const notJson = await fetch(`${origin.url}/api/builds`, { method: 'POST', body: 'packages=hello' });
    assert.equal(notJson.status, 400);
    assert.equal((await errorOf(notJson)).code, 'QUERY_INVALID');

    const tooBig = await fetch(`${origin.url}/api/builds`, { method: 'POST', body: JSON.stringify({ packages: ['hello'], pad: 'x'.repeat(API_LIMITS.maxBodyBytes) }) });
    assert.equal(tooBig.status, 400);
    assert.match((await errorOf(tooBig)).message, /larger than 8192 bytes/);

    const unknownEvents = await fetch(`${origin.url}/api/builds/hello/nosuchpackage:latest/events`);
    assert.equal(unknownEvents.status, 404);
    assert.equal((await errorOf(unknownEvents)).message, 'unknown package: nosuchpackage');

    const badEvents = await fetch(`${origin.url}/api/builds/Hello:latest/events`);
    assert.equal(badEvents.status, 400);
    assert.equal((await errorOf(badEvents)).code, 'NAME_INVALID');

    assert.deepEqual(nixCommands(await processes.commands()), []);
  });

  test('a build from the API streams its steps, layers and summary; a pull afterwards builds nothing', { timeout: 120_000 }, async () => {
    const started = await postBuild(origin, { packages: ['jq', 'hello'] });
    assert.equal(started.status, 202);
    const answer = (await started.json()) as { name: string; tag: string; events: string };
    assert.deepEqual(answer, { name: 'jq/hello', tag: 'latest', image: 'amd64/hello/jq', events: '/api/builds/jq/hello:latest/events' } as unknown);
    const events = await readEvents(`${origin.url}${answer.events}`);
    const names = events.map((e) => e.event);
    assert.equal(names.at(-1), 'done', names.join(' '));
    assert.ok(names.includes('step'));
    const layers = events.filter((e) => e.event === 'layer');
    const planned = events.find((e) => e.event === 'layers')!.data.total as number;
    assert.equal(layers.length, planned);
    const done = events.at(-1)!.data as { summary: { digest: string; totalBytes: number; layers: { size: number; description: string }[] } };
    assert.equal(done.summary.layers.length, planned);
    assert.ok(done.summary.layers.some((l) => l.description.includes('-jq-')));
    assert.ok(done.summary.totalBytes > done.summary.layers.reduce((sum, l) => sum + l.size, 0));

    const built = await builds(origin);
    const pull = await pullManifest(origin, 'hello/jq', 'latest');
    assert.equal(pull.status, 200);
    // The summary names the Docker manifest; the pull asked for OCI, so compare what both are made of.
    const manifest = JSON.parse(pull.body) as { layers: { size: number }[] };
    assert.deepEqual(manifest.layers.map((l) => l.size), done.summary.layers.map((l) => l.size));
    assert.equal(await builds(origin), built, 'the pull built nothing');
  });

  test('a failed build streams Nix’s message and is listed in /api/failures', { timeout: 120_000 }, async () => {
    const started = await postBuild(origin, { packages: ['brokenPackage'] });
    assert.equal(started.status, 202);
    const { events: path } = (await started.json()) as { events: string };
    const events = await readEvents(`${origin.url}${path}`);
    const failed = events.at(-1)!;
    assert.equal(failed.event, 'failed');
    const error = failed.data.error as ApiError;
    assert.equal(error.code, 'UNKNOWN');
    assert.match((error.detail as { nix: string }).nix, /this package is broken on purpose/);
    const { failures } = (await (await fetch(`${origin.url}/api/failures`)).json()) as { failures: { image: string; error: ApiError }[] };
    assert.equal(failures[0]!.image, 'amd64/brokenpackage:latest');
    assert.match((failures[0]!.error.detail as { nix: string }).nix, /broken on purpose/);
  });

  test('watching an image nobody started starts its build (another replica may have had the POST)', { timeout: 120_000 }, async () => {
    const events = await readEvents(`${origin.url}/api/builds/htop:latest/events`);
    assert.equal(events.at(-1)!.event, 'done');
    assert.equal(events[0]!.event, 'step');
  });
});

test('a git source’s index is stored once per commit and read back after a restart without Nix', { timeout: 180_000 }, async (t) => {
  const defer = deferrer(t);
  const root = await tempDir('page-index-git-');
  defer(() => rm(root, { recursive: true, force: true }));
  const work = join(root, 'work');
  const bare = join(root, 'pkgs.git');
  await initRepository(work, 'first');
  await git(root, 'init', '-q', '--bare', '-b', 'main', bare);
  await publish(work, bare);
  const server = await serveDirectory(root);
  defer(() => server.close());
  const processes = await recordProcesses();
  defer(() => processes.remove());
  const storagePath = await tempDir('page-index-storage-');
  defer(() => rm(storagePath, { recursive: true, force: true }));
  const env = { NIXERY_PKGS_PATH: '', NIXERY_PKGS_REPO: `${server.url}/pkgs.git`, ...processes.env };

  const first = await startOrigin({ env, storagePath });
  defer(() => first.stop());
  const found = (await (await fetch(`${first.url}/api/search?q=greeting`)).json()) as { packages: { attrPath: string }[] };
  assert.deepEqual(found.packages.map((p) => p.attrPath), ['greeting']);
  assert.equal((await processes.commands()).filter((c) => c.includes('index.nix')).length, 1);
  const stored = await readdir(join(storagePath, 'index'));
  assert.equal(stored.length, 1);
  assert.match(stored[0]!, /^[0-9a-f]{64}\.json$/);
  await first.stop();

  const second = await startOrigin({ env, storagePath });
  defer(() => second.stop());
  // Start-up's own check (nix-build --version) is not the index's.
  await processes.clear();
  const again = (await (await fetch(`${second.url}/api/search?q=greeting`)).json()) as { packages: { attrPath: string }[] };
  assert.deepEqual(again.packages.map((p) => p.attrPath), ['greeting']);
  assert.deepEqual(nixCommands(await processes.commands()), [], 'the restarted origin read the stored index');
});

test('a client holds at most a few build event streams: past them 429 before any build is joined, and a stream it closes frees its place', { timeout: 120_000 }, async (t) => {
  const origin = await startOpsOrigin();
  const streams: AbortController[] = [];
  t.after(async () => {
    for (const stream of streams) stream.abort();
    await writeFile(origin.gate, 'go');
    await origin.cleanup();
  });
  // `slow` waits for its gate: its build, and every stream watching it, stay open until the test ends.
  const url = `${origin.url}/api/builds/slow:latest/events`;
  const open = async (): Promise<Response> => {
    const stream = new AbortController();
    streams.push(stream);
    return fetch(url, { signal: stream.signal });
  };
  for (let i = 0; i < API_LIMITS.maxEventStreamsPerClient; i++) {
    const res = await open();
    assert.equal(res.status, 200, `stream ${i + 1}`);
  }
  const refused = await open();
  assert.equal(refused.status, 429);
  assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/);
  const error = await errorOf(refused);
  assert.equal(error.code, 'TOOMANYREQUESTS');
  assert.deepEqual((error.detail as { limit: string }).limit, 'event-streams');

  streams[0]!.abort();
  // The origin sees the first stream's client leave a moment later; then its place is free again.
  let again: Response | undefined;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    again = await open();
    if (again.status === 200) break;
    await again.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(again?.status, 200, 'a closed stream gave its place back');
});
