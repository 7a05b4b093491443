// One timed manifest request of bench:load, shared by the load generator's
// worker and the cached client on the main thread.
export const REQUEST_LIMIT_MS = 120_000;

export interface Outcome {
  status: number | 'timeout' | 'error';
  ms: number;
  /** A scheduled request (cached-clients.ts): how late its client sent it, already counted in `ms`. */
  late?: number;
}

export async function get(url: string, client: string, headers: Record<string, string> = {}): Promise<Outcome> {
  const started = performance.now();
  try {
    const res = await fetch(url, { headers: { 'CF-Connecting-IP': client, Accept: 'application/vnd.oci.image.manifest.v1+json', ...headers }, signal: AbortSignal.timeout(REQUEST_LIMIT_MS) });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - started };
  } catch (err) {
    return { status: (err as Error).name === 'TimeoutError' ? 'timeout' : 'error', ms: performance.now() - started };
  }
}
