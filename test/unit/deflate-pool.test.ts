import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { DeflatePool } from '../../origin/layers/deflate-pool.ts';
import { statFields } from '../../origin/nix/process-tree.ts';
import { deferrer } from '../support/cleanup.ts';

/** The thread's niceness (field 19 of its stat). */
const niceOf = (tid: string) => Number(statFields(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'))?.[16]);

function threadsNamed(name: string): string[] {
  return readdirSync('/proc/self/task').filter((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === name;
    } catch {
      return false;
    }
  });
}

test('deflate workers run at the pool’s niceness while the thread that started them keeps its own', { timeout: 30_000 }, async (t) => {
  const defer = deferrer(t);
  const mainTid = String(process.pid);
  const ownNice = niceOf(mainTid);
  const pool = new DeflatePool(2, { niceness: 7 });
  defer(() => pool.close());
  // Two jobs at once: both workers start and have run their set-up before they answer.
  const job = () => pool.run({ data: new Uint8Array(64 * 1024).fill(97), dictionary: new Uint8Array(0), pieceSize: 64 * 1024, last: true, level: 6 });
  await Promise.all([job(), job()]);
  const workers = threadsNamed('deflate');
  assert.equal(workers.length, 2, 'each worker names its thread "deflate"');
  // Raising priority needs privilege: an unprivileged process already past 7 keeps its own niceness.
  const expected = process.getuid?.() === 0 || ownNice <= 7 ? 7 : ownNice;
  for (const tid of workers) assert.equal(niceOf(tid), expected, `thread ${tid}`);
  assert.equal(niceOf(mainTid), ownNice, 'the event loop’s thread keeps its niceness');
});

test('a deflate pool told nothing leaves its workers at the process’s niceness', { timeout: 30_000 }, async (t) => {
  const defer = deferrer(t);
  const ownNice = niceOf(String(process.pid));
  const before = new Set(threadsNamed('deflate'));
  const pool = new DeflatePool(1);
  defer(() => pool.close());
  await pool.run({ data: new Uint8Array(1024), dictionary: new Uint8Array(0), pieceSize: 64 * 1024, last: true, level: 6 });
  const fresh = threadsNamed('deflate').filter((tid) => !before.has(tid));
  assert.equal(fresh.length, 1);
  assert.equal(niceOf(fresh[0]!), ownNice);
});

test('a deflate pool refuses a niceness outside 0-19', () => {
  assert.throws(() => new DeflatePool(1, { niceness: 20 }), /0-19/);
  assert.throws(() => new DeflatePool(1, { niceness: -1 }), /0-19/);
});

test('a script run under node --max-old-space-size and --expose-gc compresses through the shared pool', { timeout: 60_000 }, async (t) => {
  const defer = deferrer(t);
  const dir = await mkdtemp(join(tmpdir(), 'deflate-v8-options-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  const script = join(dir, 'deflate.mjs');
  await writeFile(
    script,
    `import { inflateRawSync } from 'node:zlib';
    import { sharedDeflatePool, closeSharedDeflatePool } from ${JSON.stringify(new URL('../../origin/layers/deflate-pool.ts', import.meta.url).href)};
    const pool = sharedDeflatePool();
    pool.warm();
    const out = await pool.run({ data: new Uint8Array(4096).fill(97), dictionary: new Uint8Array(0), pieceSize: 4096, last: true, level: 6 });
    await closeSharedDeflatePool();
    process.stdout.write(String(inflateRawSync(out.bytes).length));
  `,
  );
  const { stdout } = await execa(process.execPath, ['--max-old-space-size=256', '--expose-gc', script]);
  assert.equal(stdout, '4096');
});
