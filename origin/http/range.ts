// Parses a Range header for a blob of known size. Only single byte ranges
// are supported (what registry clients send to resume a download); anything
// else is answered with the whole blob, as RFC 9110 allows.
import { errors } from '../../shared/errors.ts';
import type { ByteRange } from '../storage/storage.ts';

export function parseRange(header: string | undefined, size: number): ByteRange | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    // Suffix range: the last N bytes.
    const length = Number(m[2]);
    if (length === 0) throw errors.rangeNotSatisfiable(size);
    start = Math.max(0, size - length);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (start >= size) throw errors.rangeNotSatisfiable(size);
  return { start, end };
}
