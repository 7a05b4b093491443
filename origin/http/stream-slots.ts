// Places for the build event streams an origin holds open (http/api.ts):
// each is a connection kept until its build ends, which strangers could
// otherwise open without end. A client gets a few and the origin a bounded
// number in all (shared/api.ts API_LIMITS); past either, the request is
// refused before any build is started or joined.
export class StreamSlots {
  private readonly limits: { perClient: number; total: number };
  private readonly byClient = new Map<string, number>();
  private total = 0;

  constructor(limits: { perClient: number; total: number }) {
    this.limits = limits;
  }

  /** A place for `client`'s stream and the function that gives it back (once), or null when none is free. */
  take(client: string): (() => void) | null {
    const held = this.byClient.get(client) ?? 0;
    if (held >= this.limits.perClient || this.total >= this.limits.total) return null;
    this.byClient.set(client, held + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.byClient.get(client) ?? 1) - 1;
      if (left === 0) this.byClient.delete(client);
      else this.byClient.set(client, left);
    };
  }

  /** Streams open now, in all. */
  get open(): number {
    return this.total;
  }
}
