// gzip on every core, as pigz does: the input is cut into fixed-size pieces,
// each deflated on its own by a pool of worker threads (deflate-chunk.ts
// says how pieces join into one deflate stream), and the outputs are written
// in order between a gzip header and trailer: one ordinary gzip member that
// any gunzip reads.
//
// The bytes depend only on the input, the level and the piece size, never on
// the number of workers or on how the input arrived: the piece size is a
// constant of the release, so a layer has the same digest on every machine
// running it. Jobs (runs of whole pieces) only batch the messages to the
// workers; a bounded number is in flight per stream, so memory stays a few
// MiB whatever the layer's size.
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { WINDOW } from './deflate-chunk.ts';
import { sharedDeflatePool, type DeflateOutput, type DeflatePool } from './deflate-pool.ts';

/** Input bytes per independently deflated piece: pigz's default. Part of the output format: changing it changes every layer's digest. */
export const PIECE_SIZE = 128 * 1024;

/** Pieces per message to a worker: fewer round trips, same bytes. */
const PIECES_PER_JOB = 8;

export interface ParallelGzipOptions {
  /** 0-9; 6 (zlib's default) unless told. */
  level?: number;
  pool?: DeflatePool;
  /** For tests only: the output format is defined by PIECE_SIZE. */
  pieceSize?: number;
  piecesPerJob?: number;
  /** Jobs compressing or compressed but not yet written, per stream; enough to keep every worker busy. */
  maxJobsInFlight?: number;
}

export interface ParallelGzipStats {
  pieces: number;
  /** Pieces stored rather than deflated, as incompressible. */
  storedPieces: number;
}

interface InFlight {
  done: Promise<DeflateOutput>;
  output: DeflateOutput | null;
}

/** The gzip header: no name, no timestamp, Unix, as zlib writes it. */
function gzipHeader(level: number): Buffer {
  // XFL as zlib sets it: 2 for the slowest level, 4 for the fastest.
  const xfl = level === 9 ? 2 : level <= 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
}

export class ParallelGzip extends Transform {
  readonly stats: ParallelGzipStats = { pieces: 0, storedPieces: 0 };
  private readonly level: number;
  private readonly pool: DeflatePool;
  private readonly pieceSize: number;
  private readonly jobSize: number;
  private readonly maxInFlight: number;
  private buffer: Uint8Array;
  private filled = 0;
  private dictionary: Uint8Array = new Uint8Array(0);
  private readonly inflight: InFlight[] = [];
  private crc = 0;
  private length = 0;
  private headerWritten = false;

  constructor(options: ParallelGzipOptions = {}) {
    super();
    this.level = options.level ?? 6;
    if (!Number.isInteger(this.level) || this.level < 0 || this.level > 9) throw new Error(`gzip level must be 0-9, not ${this.level}`);
    this.pool = options.pool ?? sharedDeflatePool();
    this.pieceSize = options.pieceSize ?? PIECE_SIZE;
    if (this.pieceSize < WINDOW) throw new Error(`pieces must be at least the ${WINDOW}-byte window`);
    this.jobSize = this.pieceSize * (options.piecesPerJob ?? PIECES_PER_JOB);
    this.maxInFlight = options.maxJobsInFlight ?? this.pool.size + 2;
    this.buffer = new Uint8Array(this.jobSize);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.accept(chunk).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    this.finish().then(() => callback(), callback);
  }

  private async accept(chunk: Buffer): Promise<void> {
    this.crc = crc32(chunk, this.crc);
    this.length += chunk.length;
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(this.jobSize - this.filled, chunk.length - offset);
      this.buffer.set(chunk.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.jobSize) await this.submit(false);
    }
  }

  private async finish(): Promise<void> {
    await this.submit(true);
    while (this.inflight.length > 0) await this.writeOldest();
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(this.crc >>> 0, 0);
    // ISIZE is the length modulo 2^32 (RFC 1952).
    trailer.writeUInt32LE(this.length % 2 ** 32, 4);
    this.push(trailer);
  }

  /** Hands the buffered job to the pool, then waits while too many are in flight. */
  private async submit(last: boolean): Promise<void> {
    const data = this.buffer.subarray(0, this.filled);
    const dictionary = this.dictionary;
    // The next job's dictionary is copied out before this buffer moves to a worker.
    this.dictionary = data.slice(Math.max(0, data.length - WINDOW));
    const entry: InFlight = { done: this.pool.run({ data, dictionary, pieceSize: this.pieceSize, last, level: this.level }), output: null };
    entry.done.then(
      (output) => (entry.output = output),
      // Seen when this entry is awaited; until then, no unhandled rejection.
      () => undefined,
    );
    this.inflight.push(entry);
    this.buffer = new Uint8Array(last ? 0 : this.jobSize);
    this.filled = 0;
    while (this.inflight[0]?.output) await this.writeOldest();
    while (this.inflight.length >= this.maxInFlight) await this.writeOldest();
  }

  private async writeOldest(): Promise<void> {
    const entry = this.inflight[0]!;
    const output = await entry.done;
    this.inflight.shift();
    if (!this.headerWritten) {
      this.headerWritten = true;
      this.push(gzipHeader(this.level));
    }
    this.stats.pieces += output.pieces;
    this.stats.storedPieces += output.storedPieces;
    this.push(output.bytes);
  }
}

export function createParallelGzip(options: ParallelGzipOptions = {}): ParallelGzip {
  return new ParallelGzip(options);
}
