// The one place where the origin turns an error into a registry response.
import type { Response } from 'express';
import { errorBody, toRegistryError, type RegistryError } from '../../shared/errors.ts';
import type { Logger } from 'pino';

export function sendError(res: Response, err: unknown, log: Logger): void {
  const registryError: RegistryError = toRegistryError(err);
  if (registryError.status >= 500) log.error({ err, code: registryError.code }, registryError.message);
  if (res.headersSent) {
    // Too late for a status: cut the body short so the client sees a failed transfer, not a short blob.
    res.destroy();
    return;
  }
  const body = JSON.stringify(errorBody(registryError));
  res.status(registryError.status);
  res.set({ 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), 'Docker-Distribution-API-Version': 'registry/2.0' });
  res.set(registryError.headers);
  if (registryError.status === 416) res.set('Content-Range', `bytes */${(registryError.detail as { size: number }).size}`);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
