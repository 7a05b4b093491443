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

test('the tag selects nothing in a local directory: any tag is the directory as it is', async () => {
  assert.equal(await digestOf(origin, 'greeting', 'v7'), await digestOf(origin, 'greeting', 'latest'));
});
