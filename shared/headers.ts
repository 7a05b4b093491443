// Header names the edge and the origin agree on.

/** Carries the shared secret that proves a request came through the edge. */
export const ORIGIN_SECRET_HEADER = 'X-Nixery-Edge-Secret';
/** A request id made by the edge (or the origin when called directly), logged on both sides. */
export const REQUEST_ID_HEADER = 'X-Request-Id';
