// First-come-first-served mutual exclusion per key, over a fixed number of stripes (key modulo the
// stripe count), as async-mutex's runExclusive but without allocating a promise when the stripe is
// free: each band change takes one, so its cost is on every write's path.

type Wake = () => void;

export class StripeLock {
  /** undefined: stripe free; an array: stripe held, with these waiters in arrival order. */
  private readonly waiters: (Wake[] | undefined)[];

  constructor(private readonly stripeCount: number) {
    this.waiters = new Array<Wake[] | undefined>(stripeCount).fill(undefined);
  }

  /** Runs `operation` once every earlier holder of the key's stripe has finished. */
  async run<T>(key: number, operation: () => Promise<T>): Promise<T> {
    const stripe = key % this.stripeCount;
    const queue = this.waiters[stripe];
    if (queue === undefined) this.waiters[stripe] = [];
    else await new Promise<void>((resolve) => queue.push(resolve)); // ownership handed over by release()
    try {
      return await operation();
    } finally {
      this.release(stripe);
    }
  }

  /** Hands the stripe to the first waiter (who then holds it), or frees it. */
  private release(stripe: number): void {
    const queue = this.waiters[stripe] as Wake[];
    const next = queue.shift();
    if (next === undefined) this.waiters[stripe] = undefined;
    else next();
  }
}
