import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { gunzipSync, inflateRawSync, constants } from 'node:zlib';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { ParallelGzip, PIECE_SIZE, type ParallelGzipOptions } from '../../origin/layers/parallel-gzip.ts';
import { DeflatePool } from '../../origin/layers/deflate-pool.ts';
import { compressPiece, entropyBits, storedBlocks, STORE_ABOVE_BITS, WINDOW } from '../../origin/layers/deflate-chunk.ts';

const pools: DeflatePool[] = [];
const pool = (size: number) => {
  const p = new DeflatePool(size);
  pools.push(p);
  return p;
};
after(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

/** Incompressible bytes that are the same on every run: an AES-CTR keystream. */
function keystream(bytes: number, seed: number): Buffer {
  const key = Buffer.alloc(16, seed);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(bytes));
}

function text(bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `${i.toString(16)} /nix/store/${(i * 2654435761 % 2 ** 32).toString(36)}-lib-${i % 97}/lib/libfoo.so.${i % 13}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

/** Text, random bytes and text again, at sizes that end off any piece boundary: like a layer mixing libraries and compressed assets. */
const MIXED = Buffer.concat([text(1_300_000), keystream(900_000, 1), text(700_001), keystream(5, 2)]);

async function gzipOf(input: Buffer, arrival: number, options: ParallelGzipOptions): Promise<{ gz: Buffer; stream: ParallelGzip }> {
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += arrival) parts.push(input.subarray(i, i + arrival));
  const out: Buffer[] = [];
  const stream = new ParallelGzip(options);
  await pipeline(
    Readable.from(parts),
    stream,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return { gz: Buffer.concat(out), stream };
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

test('the same bytes whatever the number of workers, the batching and how the input arrives', { timeout: 60_000 }, async () => {
  const one = await gzipOf(MIXED, 64 * 1024, { pool: pool(1) });
  const three = await gzipOf(MIXED, 1000, { pool: pool(3) });
  const unbatched = await gzipOf(MIXED, MIXED.length, { pool: pool(2), piecesPerJob: 1, maxJobsInFlight: 7 });
  assert.ok(one.gz.equals(three.gz), '1 worker and 3 workers');
  assert.ok(one.gz.equals(unbatched.gz), 'one piece per job and eight');
  assert.equal(one.stream.stats.pieces, Math.floor(MIXED.length / PIECE_SIZE) + 1);
  // A golden digest: a change here changes every layer's digest, which must be a deliberate release note.
  assert.equal(sha256(one.gz), 'd6b70c3697eafe5db1da3135f08c526a76305c111b2341070b1fad086f174bcb');
});

test('the output is one gzip member that node, gzip and pigz decompress to exactly the input', { timeout: 60_000 }, async () => {
  const { gz } = await gzipOf(MIXED, 50_000, { pool: pool(2) });
  assert.ok(gunzipSync(gz).equals(MIXED), 'node zlib');
  for (const tool of ['gzip', 'pigz']) {
    const result = await execa(tool, ['-dc'], { input: gz, encoding: 'buffer', stripFinalNewline: false });
    assert.ok(Buffer.from(result.stdout).equals(MIXED), `${tool} -dc`);
  }
  const list = await execa('gzip', ['-t'], { input: gz });
  assert.equal(list.exitCode, 0);
});

test('edge sizes: empty, one byte, exactly whole pieces, one byte past', { timeout: 60_000 }, async () => {
  for (const size of [0, 1, PIECE_SIZE, PIECE_SIZE * 8, PIECE_SIZE * 8 + 1, WINDOW - 1]) {
    const input = text(size);
    const { gz } = await gzipOf(input, 4096, { pool: pool(2) });
    assert.ok(gunzipSync(gz).equals(input), `${size} bytes round trip`);
    const { stdout } = await execa('gzip', ['-dc'], { input: gz, encoding: 'buffer', stripFinalNewline: false });
    assert.ok(Buffer.from(stdout).equals(input), `${size} bytes through gzip -dc`);
    // ISIZE and CRC are what gzip checks; gunzip above verified them too.
    assert.equal(gz.readUInt32LE(gz.length - 4), size);
  }
});

test('incompressible pieces are stored, not deflated, and cost only their framing', { timeout: 60_000 }, async () => {
  const random = keystream(PIECE_SIZE * 6, 3);
  const { gz, stream } = await gzipOf(random, 65536, { pool: pool(2) });
  assert.equal(stream.stats.storedPieces, stream.stats.pieces - 1, 'every full piece stored (the last, empty piece ends the stream)');
  // Header, trailer, a 5-byte header per 64 KiB stored block and the empty final block.
  assert.ok(gz.length < random.length + 200, `${gz.length} bytes for ${random.length}`);
  assert.ok(gunzipSync(gz).equals(random));

  const compressible = await gzipOf(text(PIECE_SIZE * 6), 65536, { pool: pool(2) });
  assert.equal(compressible.stream.stats.storedPieces, 0);
  assert.ok(compressible.gz.length < (PIECE_SIZE * 6) / 2);
});

test('a piece: random bytes measure near 8 bits a byte and are stored; text is deflated', () => {
  assert.ok(entropyBits(keystream(PIECE_SIZE, 4)) > STORE_ABOVE_BITS);
  assert.ok(entropyBits(text(PIECE_SIZE)) < 6);
  assert.equal(entropyBits(Buffer.alloc(1000)), 0);
  assert.equal(compressPiece(keystream(PIECE_SIZE, 4), { level: 6, dictionary: new Uint8Array(0), last: false }).stored, true);
  assert.equal(compressPiece(text(PIECE_SIZE), { level: 6, dictionary: new Uint8Array(0), last: false }).stored, false);
});

test('stored blocks are a valid deflate stream, split at 64 KiB', () => {
  const data = keystream(200_000, 5);
  const blocks = storedBlocks(data, true);
  assert.equal(blocks.length, data.length + 5 * 4);
  assert.ok(inflateRawSync(blocks).equals(data));
  // Not last: no final block, so the stream is unfinished but every byte is there.
  assert.ok(inflateRawSync(storedBlocks(data, false), { finishFlush: constants.Z_SYNC_FLUSH }).equals(data));
  assert.ok(inflateRawSync(storedBlocks(new Uint8Array(0), true)).equals(Buffer.alloc(0)));
});

test('a piece deflated with its dictionary refers back across the boundary', () => {
  // Hex of random bytes: compressible (4 bits a byte) but with no repetition of its own.
  const before = Buffer.from(keystream(WINDOW / 2, 7).toString('hex'));
  // From the dictionary's end: deflate reaches back at most 32 KiB less its lookahead.
  const piece = before.subarray(before.length - 20_000);
  const withDictionary = compressPiece(piece, { level: 6, dictionary: before, last: true });
  const without = compressPiece(piece, { level: 6, dictionary: new Uint8Array(0), last: true });
  assert.ok(withDictionary.bytes.length < without.bytes.length / 10, `${withDictionary.bytes.length} vs ${without.bytes.length}`);
  assert.ok(inflateRawSync(withDictionary.bytes, { dictionary: before }).equals(piece));
});

test('the pool rejects jobs it cannot do and jobs pending when it closes', { timeout: 30_000 }, async () => {
  const p = new DeflatePool(1);
  // Warm workers are idle and unref'd; the rest of the test uses them.
  p.warm();
  await assert.rejects(p.run({ data: new Uint8Array(1000), dictionary: new Uint8Array(0), pieceSize: PIECE_SIZE, last: false, level: 6 }), /whole pieces/);
  const jobs = Array.from({ length: 4 }, () => p.run({ data: keystream(PIECE_SIZE * 8, 6), dictionary: new Uint8Array(0), pieceSize: PIECE_SIZE, last: false, level: 6 }));
  const settled = Promise.allSettled(jobs);
  await p.close();
  const outcomes = await settled;
  // Closed in the same tick: the job on the worker and the queued ones are all rejected, and close() still settled (a late result must not unref a worker being terminated).
  assert.deepEqual(
    outcomes.map((o) => o.status === 'rejected' && /closed/.test(String(o.reason))),
    [true, true, true, true],
  );
  await assert.rejects(p.run({ data: new Uint8Array(0), dictionary: new Uint8Array(0), pieceSize: PIECE_SIZE, last: true, level: 6 }), /closed/);
});
