// Structured JSON logs (pino): one line per request and per build, readable
// by any log pipeline and by the tests, which parse them.
import { pino, type Logger } from 'pino';

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { service: 'nixery-edge-origin' }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? process.stdout);
}
