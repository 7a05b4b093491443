// The test command's own promise: every test that runs is reported. With
// --test-force-exit and several test files at once, Node's runner loses
// verdicts that a test file's process had not finished writing when it was
// forced to exit (test/support/blocking-report.ts); this runs the runner as
// scripts/test.sh does on many small files and counts what it reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deferrer } from '../support/cleanup.ts';

const FILES = 40;
const TESTS_PER_FILE = 50;
const PRELOAD = new URL('../support/blocking-report.ts', import.meta.url).pathname;

test('the runner, run as scripts/test.sh runs it, reports every test of many files run at once', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const dir = await mkdtemp(join(tmpdir(), 'test-runner-reports-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  for (let f = 0; f < FILES; f++) {
    const tests = Array.from({ length: TESTS_PER_FILE }, (_, i) => `test('t${i}', () => {});`).join('\n');
    await writeFile(join(dir, `f${f}.test.mjs`), `import { test } from 'node:test';\n${tests}\n`);
  }
  // A runner of its own, not a file of this one's: without this runner's mark in its environment.
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', PRELOAD, '--test', '--test-concurrency=4', '--test-force-exit', '--test-reporter=tap'],
    { cwd: dir, env, timeout: 100_000, maxBuffer: 64 * 1024 * 1024 },
  );
  const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(stdout)?.[1]);
  assert.equal(count('tests'), FILES * TESTS_PER_FILE, 'every test reported');
  assert.equal(count('pass'), FILES * TESTS_PER_FILE);
});
