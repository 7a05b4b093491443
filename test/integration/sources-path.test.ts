// The path source end to end: a local directory is whatever it holds now, so
// every pull evaluates it, and an image is rebuilt only when what it
// evaluates to changed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { builds, digestOf, packageSet, recordProcesses, tempDir, type ProcessRecorder } from '../support/sources.ts';

let dir: string;
let processes: ProcessRecorder;
let origin: RunningOrigin;

before(async () => {
  dir = await packageSet(await tempDir('path-source-it-'), `path ${process.pid}-${Date.now()}`);
  processes = await recordProcesses();
  origin = await startOrigin({ env: { NIXERY_PKGS_PATH: dir, ...processes.env } });
});

after(async () => {
  await origin?.stop();
  await processes?.remove();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('an unchanged directory is evaluated again but not rebuilt; a changed one builds the new version', async () => {
  const first = await digestOf(origin, 'greeting', 'latest');
  assert.equal(await builds(origin), 1);

  await processes.clear();
  assert.equal(await digestOf(origin, 'greeting', 'latest'), first);
  const commands = await processes.commands();
  assert.ok(commands.some((c) => c.startsWith('nix-instantiate ')), 'the directory is evaluated on every pull');
  assert.ok(!commands.some((c) => c.startsWith('nix-build ')), 'an image already built from the same derivations is not built again');
  assert.equal(await builds(origin), 1);

  await writeFile(join(dir, 'greeting.txt'), 'a new greeting\n');
  const second = await digestOf(origin, 'greeting', 'latest');
  assert.notEqual(second, first);
  assert.equal(await builds(origin), 2);
});

test('a local directory has one version, latest: any other tag is 404 MANIFEST_UNKNOWN, with no Nix work, and the tag list says latest', async () => {
  await processes.clear();
  const res = await fetch(`${origin.url}/v2/greeting/manifests/missing-7336nswwaxneuubcd4fs`);
  assert.equal(res.status, 404);
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  assert.equal(body.errors[0]!.code, 'MANIFEST_UNKNOWN');
  assert.match(body.errors[0]!.message, /one version is "latest"/);
  assert.deepEqual(await processes.commands(), [], 'no process ran for a tag the source cannot have');

  const tags = await fetch(`${origin.url}/v2/greeting/tags/list`);
  assert.deepEqual(await tags.json(), { name: 'greeting', tags: ['latest'] });
});
