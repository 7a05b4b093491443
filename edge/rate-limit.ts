// Per-client limits on what reaches the origin: manifest requests the edge
// cannot answer from its caches (misses, tag revalidations). Cache hits are
// never limited. The counting is Cloudflare's Rate Limiting binding
// (`[[ratelimits]]` in wrangler.toml, run locally by workerd through
// miniflare): counters are per Cloudflare location and eventually
// consistent, which is what a guard against floods needs, not an exact
// quota. Without the binding nothing is limited.
//
// No Workers-only API here (the binding comes in as `OriginRateLimiter`):
// the Node unit tests import it.
import { errors, type RegistryError } from '../shared/errors.ts';
import { clientKey } from '../shared/client-address.ts';

/** The part of the Workers RateLimit binding used here. */
export interface OriginRateLimiter {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

export interface RateLimitPolicy {
  limiter: OriginRateLimiter | null;
  /** The binding's period (10 or 60 s): the Retry-After of a limited client. */
  periodSeconds: number;
}

/** The client as Cloudflare saw it; its /64 for IPv6 (shared/client-address.ts). */
export function edgeClient(request: Request): string | null {
  return clientKey(request.headers.get('CF-Connecting-IP'));
}

/**
 * Null when `client` may send one more request to the origin, else the
 * 429 to answer. A failing binding lets the request through: the origin has
 * its own limits, and an outage of the counter must not become one of the
 * registry.
 */
export async function limitOriginRequest(policy: RateLimitPolicy | undefined, client: string | null): Promise<RegistryError | null> {
  if (policy === undefined || policy.limiter === null) return null;
  let outcome: { success: boolean };
  try {
    outcome = await policy.limiter.limit({ key: `origin:${client ?? 'unknown'}` });
  } catch (err) {
    console.error('nixery-edge: the rate limiter failed; letting the request through', String(err));
    return null;
  }
  if (outcome.success) return null;
  return errors.tooManyRequests(
    `too many requests that this edge cannot answer from its cache; retry in ${policy.periodSeconds} s`,
    policy.periodSeconds,
    { limit: 'origin-requests', periodSeconds: policy.periodSeconds },
  );
}

/** Throws the 429 of limitOriginRequest, for a request that has nothing else to answer with. */
export async function refuseOverLimit(policy: RateLimitPolicy | undefined, client: string | null): Promise<void> {
  const limited = await limitOriginRequest(policy, client);
  if (limited !== null) throw limited;
}
