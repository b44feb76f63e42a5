// The server-wide budget of bytes in flight: WRITE payloads being received or written, READ reply
// buffers, and replies not yet handed to the kernel, summed over every connection. Each session
// also has its own cap, below this one, so a client that never reads its replies holds at most
// its own cap and the rest of the budget keeps serving the others.
//
// Waiting is first come, first served: while a session waits, no other session may take budget
// ahead of it, so a 32 MiB READ is not starved by a stream of small ones. Every operation is O(1)
// (a Set keeps insertion order, so its first element is the head of the queue).

/** A session waiting for budget; onBudget() runs when bytes were released and it is first in line. */
export interface BudgetWaiter {
  onBudget(): void;
}

export interface InFlightBudgetStats {
  /** The server-wide cap. */
  readonly capacityBytes: number;
  /** Bytes in flight now, over all connections. */
  readonly inFlightBytes: number;
  /** Highest inFlightBytes seen since the server started. */
  readonly peakInFlightBytes: number;
  /** Sessions waiting for budget. */
  readonly waitingSessions: number;
}

export class InFlightBudget {
  #usedBytes = 0;
  #peakBytes = 0;
  readonly #waiters = new Set<BudgetWaiter>();
  #waking = false;

  constructor(readonly capacityBytes: number) {}

  get usedBytes(): number {
    return this.#usedBytes;
  }

  get waiting(): number {
    return this.#waiters.size;
  }

  stats(): InFlightBudgetStats {
    return { capacityBytes: this.capacityBytes, inFlightBytes: this.#usedBytes, peakInFlightBytes: this.#peakBytes, waitingSessions: this.#waiters.size };
  }

  /**
   * Takes `bytes` if they fit and no other session is waiting ahead of `taker`. On false the
   * caller queues itself with wait(). A request bigger than the whole budget still runs alone
   * (when nothing else is in flight), so it cannot wait forever.
   */
  tryTake(bytes: number, taker: BudgetWaiter): boolean {
    if (this.#waiters.size > 0 && this.#head() !== taker) return false;
    if (this.#usedBytes + bytes > this.capacityBytes && this.#usedBytes > 0) return false;
    this.#add(bytes);
    return true;
  }

  /**
   * Charges bytes that cannot wait (a small error reply for a request already parsed). The
   * overshoot is bounded by one such frame per connection.
   */
  charge(bytes: number): void {
    this.#add(bytes);
  }

  release(bytes: number): void {
    this.#usedBytes -= bytes;
    if (this.#waiters.size > 0) this.#wake();
  }

  /** Queues `waiter` (a waiter already queued keeps its place). */
  wait(waiter: BudgetWaiter): void {
    this.#waiters.add(waiter);
  }

  /** Leaves the queue (got its budget, is now limited by its own cap, or went away). */
  leave(waiter: BudgetWaiter): void {
    const wasHead = this.#head() === waiter;
    if (this.#waiters.delete(waiter) && wasHead && this.#waiters.size > 0) this.#wake();
  }

  #add(bytes: number): void {
    this.#usedBytes += bytes;
    if (this.#usedBytes > this.#peakBytes) this.#peakBytes = this.#usedBytes;
  }

  #head(): BudgetWaiter | undefined {
    for (const waiter of this.#waiters) return waiter;
    return undefined;
  }

  /** Lets waiters in order until the head cannot proceed (it stays first). */
  #wake(): void {
    if (this.#waking) return;
    this.#waking = true;
    try {
      let previous: BudgetWaiter | undefined;
      for (let head = this.#head(); head !== undefined && head !== previous; head = this.#head()) {
        previous = head;
        head.onBudget();
      }
    } finally {
      this.#waking = false;
    }
  }
}
