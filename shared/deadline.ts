// Bounding how long something may take, for the Worker and the origin alike.

/** Settles with `promise`, or with `fallback()` if `ms` pass first (a fallback that throws rejects). */
export async function withDeadline<T>(promise: Promise<T>, ms: number, fallback: () => T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(fallback());
      } catch (err) {
        reject(err);
      }
    }, ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** Settles with `promise`, or rejects with `message` if `ms` pass first. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  return withDeadline(promise, ms, () => {
    throw new Error(message);
  });
}
