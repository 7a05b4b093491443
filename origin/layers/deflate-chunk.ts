// Compresses one fixed-size piece of a gzip member on its own, as pigz does,
// so pieces can be compressed side by side and their outputs concatenated
// into one valid deflate stream:
//
// - each piece is deflated with the 32 KiB of input before it as the
//   dictionary, so matches across the boundary are still found (the decoder
//   has those bytes in its window: they are the output just before);
// - every piece but the last ends with a sync flush (an empty stored block),
//   which leaves the stream byte-aligned with no final block, so the next
//   piece's first block can follow directly; the last piece ends the stream.
//
// Incompressible pieces (already-compressed files, common in real closures)
// are written as stored blocks without being deflated at all: deflating
// random bytes costs as much CPU as compressing text and saves nothing. The
// decision depends on the piece's bytes only, so the output stays a function
// of the input: the same on every machine whatever its core count.
import { deflateRawSync, constants } from 'node:zlib';

/** The deflate window: a piece's dictionary is this much of the input before it. */
export const WINDOW = 32 * 1024;

/** The longest stored block deflate allows. */
const STORED_MAX = 65535;

/**
 * Order-0 entropy (bits per byte) above which a piece is stored. Deflate's
 * Huffman coding alone saves about (8 - entropy) bits a byte; above 7.9 that
 * is under about 1% and LZ77 matches are rare in such data (compressed
 * media, archives). A piece of random bytes measures about 7.998; text 4-5;
 * machine code 5-6.5. Sampled (see entropyBits), random bytes still measure
 * above 7.98.
 */
export const STORE_ABOVE_BITS = 7.9;

/** Bytes sampled per piece for the entropy probe, as this many runs spread evenly over it. */
const SAMPLE_RUNS = 8;
const SAMPLE_RUN = 2048;

/**
 * Bits per byte of the byte histogram of `data`, from runs of 2 KiB spread
 * over it (16 KiB of a 128 KiB piece): an eighth of the cost of counting
 * every byte, and contiguous runs rather than a stride, so data with a
 * period (tables of 4-byte integers, pixels) is not misjudged. Deterministic:
 * the runs depend only on the length.
 */
export function entropyBits(data: Uint8Array): number {
  if (data.length === 0) return 0;
  // Four tables, so consecutive equal bytes do not wait on each other's increment.
  const c0 = new Uint32Array(256);
  const c1 = new Uint32Array(256);
  const c2 = new Uint32Array(256);
  const c3 = new Uint32Array(256);
  const whole = data.length <= SAMPLE_RUNS * SAMPLE_RUN;
  const runs = whole ? 1 : SAMPLE_RUNS;
  const run = whole ? data.length : SAMPLE_RUN;
  for (let k = 0; k < runs; k++) {
    const start = whole ? 0 : Math.floor((k * (data.length - SAMPLE_RUN)) / (SAMPLE_RUNS - 1));
    const end = start + run;
    let i = start;
    for (; i + 4 <= end; i += 4) {
      c0[data[i]!]!++;
      c1[data[i + 1]!]!++;
      c2[data[i + 2]!]!++;
      c3[data[i + 3]!]!++;
    }
    for (; i < end; i++) c0[data[i]!]!++;
  }
  const n = runs * run;
  let bits = 0;
  for (let b = 0; b < 256; b++) {
    const c = c0[b]! + c1[b]! + c2[b]! + c3[b]!;
    if (c !== 0) bits -= c * Math.log2(c / n);
  }
  return bits / n;
}

/** Bytes `data` takes as stored blocks. */
export function storedLength(length: number): number {
  return length + 5 * Math.max(1, Math.ceil(length / STORED_MAX));
}

/** `data` as stored deflate blocks; the stream is byte-aligned before and after. */
export function storedBlocks(data: Uint8Array, last: boolean): Uint8Array {
  const out = new Uint8Array(storedLength(data.length));
  let at = 0;
  let offset = 0;
  do {
    const length = Math.min(STORED_MAX, data.length - offset);
    const final = last && offset + length === data.length;
    // BFINAL in bit 0, BTYPE 00 (stored) in bits 1-2, the rest of the byte padding.
    out[at++] = final ? 1 : 0;
    out[at++] = length & 0xff;
    out[at++] = length >>> 8;
    out[at++] = ~length & 0xff;
    out[at++] = (~length >>> 8) & 0xff;
    out.set(data.subarray(offset, offset + length), at);
    at += length;
    offset += length;
  } while (offset < data.length);
  return out;
}

export interface PieceOptions {
  level: number;
  /** The input just before this piece (at most WINDOW bytes used); empty for the first piece. */
  dictionary: Uint8Array;
  /** The last piece ends the deflate stream; the others end byte-aligned with a sync flush. */
  last: boolean;
}

export interface CompressedPiece {
  bytes: Uint8Array;
  stored: boolean;
}

/** One piece of the deflate stream, deflated or stored, whichever the bytes call for. */
export function compressPiece(data: Uint8Array, options: PieceOptions): CompressedPiece {
  if (data.length > 0 && (options.level === 0 || entropyBits(data) > STORE_ABOVE_BITS)) {
    return { bytes: storedBlocks(data, options.last), stored: true };
  }
  const dictionary = options.dictionary.subarray(Math.max(0, options.dictionary.length - WINDOW));
  const deflated = deflateRawSync(data, {
    level: options.level,
    ...(dictionary.length > 0 ? { dictionary } : {}),
    finishFlush: options.last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
  });
  // Low entropy but no repetition can still deflate to more than it was: then stored is smaller.
  if (data.length > 0 && deflated.length >= storedLength(data.length)) return { bytes: storedBlocks(data, options.last), stored: true };
  return { bytes: deflated, stored: false };
}
