// Structured JSON logs (pino): one line per request and per build, readable
// by any log pipeline and by the tests, which parse them.
//
// Written to stdout asynchronously. Node writes to a pipe (stdout under a
// container runtime, a supervisor or a test) synchronously, so once the
// pipe's 64 KiB were full, a reader that fell behind stopped the event loop,
// and every request with it, until it read again; a reader that stopped for
// good froze the origin. Lines now wait in memory, up to LOG_BUFFER_BYTES;
// past that they are dropped and counted (`log_lines_dropped_total`) rather
// than memory grown. pino flushes what is left when the process exits.
import { pino, type Logger } from 'pino';

/** Log lines held while stdout's reader falls behind (a busy minute of requests is a few MiB). */
export const LOG_BUFFER_BYTES = 16 * 1024 * 1024;

let dropped = 0;

/** Log lines dropped since start because stdout's reader fell LOG_BUFFER_BYTES behind. */
export function droppedLogLines(): number {
  return dropped;
}

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { service: 'nixery-edge-origin' }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? stdout());
}

function stdout(): ReturnType<typeof pino.destination> {
  const stream = pino.destination({ dest: 1, sync: false, maxLength: LOG_BUFFER_BYTES });
  stream.on('drop', (data: string) => {
    // A drop is one write's worth: pino writes a line at a time.
    dropped += data.split('\n').filter(Boolean).length || 1;
  });
  return stream;
}
