// The client a request came from, known to everything the request runs
// (the Nix work queue's fair shares) without passing it through the image
// builder's calls. Behind the edge the address is the one the edge saw,
// believed only on a request that proved it came from the edge (its
// secret); without a secret configured, anyone could claim any address, so
// the socket's own address is used.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Request } from 'express';
import { clientKey } from '../../shared/client-address.ts';
import { CLIENT_ADDRESS_HEADER } from '../../shared/headers.ts';

const current = new AsyncLocalStorage<string>();

/** The client of the request being handled; "unknown" outside of one. */
export function currentClient(): string {
  return current.getStore() ?? 'unknown';
}

/** Who sent `req`: the edge's word for it when `edgeVerified`, else the socket's peer. */
export function clientOf(req: Request, edgeVerified: boolean): string {
  const claimed = edgeVerified ? clientKey(req.get(CLIENT_ADDRESS_HEADER)) : null;
  return claimed ?? clientKey(req.socket.remoteAddress) ?? 'unknown';
}

/** Runs the rest of the request (`next`) as the request's client. */
export function asClient(req: Request, edgeVerified: boolean, next: () => void): void {
  current.run(clientOf(req, edgeVerified), next);
}

/** For tests and callers outside HTTP: runs `work` as `client`. */
export function runAsClient<T>(client: string, work: () => T): T {
  return current.run(client, work);
}
