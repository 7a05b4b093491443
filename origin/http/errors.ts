// The one place where the origin turns an error into a registry response.
import type { Response } from 'express';
import type { Logger } from 'pino';
import { toRegistryError, type RegistryError } from '../../shared/errors.ts';
import { errorAnswer } from '../../shared/responses.ts';
import { sendReply } from './reply.ts';
import { storageFullError } from '../storage/storage-full.ts';

export function sendError(res: Response, err: unknown, log: Logger): void {
  const registryError: RegistryError = storageFullError(err) ?? toRegistryError(err);
  if (registryError.status >= 500) log.error({ err, code: registryError.code }, registryError.message);
  if (res.headersSent) {
    // Too late for a status: cut the body short so the client sees a failed transfer, not a short blob.
    res.destroy();
    return;
  }
  // A body of bytes is written at once: nothing is left to fail.
  void sendReply(res, errorAnswer(registryError));
}
