// Header names the edge and the origin agree on.

/** Carries the shared secret that proves a request came through the edge. */
export const ORIGIN_SECRET_HEADER = 'X-Nixery-Edge-Secret';
/** A request id made by the edge (or the origin when called directly), logged on both sides. */
export const REQUEST_ID_HEADER = 'X-Request-Id';
/**
 * The client's address as the edge saw it (CF-Connecting-IP), for the
 * origin's fair shares of its Nix queue. The origin believes it only on a
 * request that also carries the edge's secret.
 */
export const CLIENT_ADDRESS_HEADER = 'X-Nixery-Client-Address';
