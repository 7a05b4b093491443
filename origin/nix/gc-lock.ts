// Keeps the origin's own Nix garbage collection apart from evaluations and
// from the moments a build makes its GC roots. A symlink root made while
// `nix-store --gc` runs is not seen by that run (Nix reads the roots once, at
// its start), and Nix 2.8's evaluator can lose a .drv to a concurrent
// collection; so evaluations run, and roots are made and the paths they
// protect checked to exist, only while no collection runs, and a collection
// starts only when none of those is under way. A waiting collection goes
// first, so a stream of builds cannot hold it off forever.

export class GcLock {
  private rooting = 0;
  private collecting = false;
  private collectorsWaiting = 0;
  private readonly waiters: (() => void)[] = [];

  /** Runs `work` (an evaluation, making roots) while no collection runs; several may run at once. */
  async makingRoots<T>(work: () => Promise<T>): Promise<T> {
    while (this.collecting || this.collectorsWaiting > 0) await this.wait();
    this.rooting++;
    try {
      return await work();
    } finally {
      this.rooting--;
      this.wake();
    }
  }

  /** Runs `work` (a collection) alone: after the roots being made, before any new one. */
  async collection<T>(work: () => Promise<T>): Promise<T> {
    this.collectorsWaiting++;
    try {
      while (this.collecting || this.rooting > 0) await this.wait();
    } finally {
      this.collectorsWaiting--;
    }
    this.collecting = true;
    try {
      return await work();
    } finally {
      this.collecting = false;
      this.wake();
    }
  }

  /** Whether a collection runs now. */
  get busy(): boolean {
    return this.collecting;
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
