// The server-wide budget of bytes in flight: WRITE payloads being received or written, READ reply
// buffers, and replies not yet handed to the kernel, summed over every connection. Each session
// also has its own cap, below this one, so a client that never reads its replies holds at most
// its own cap and the rest of the budget keeps serving the others.
//
// Sessions that must wait queue first come, first served, in two lines: requests up to
// SMALL_REQUEST_BYTES (a guest's usual I/O) and larger ones. Each line is strict FIFO, so a
// 32 MiB READ is not overtaken by later large ones, and a small request is never stuck behind a
// large one that cannot fit yet (clients that hold the budget with unread 32 MiB replies would
// otherwise stall every small request too, until connection-guard.ts drops them). Every operation
// is O(1) (a Set keeps insertion order, so its first element is the head of its line).

/** Requests up to this size do not wait behind larger ones. */
export const SMALL_REQUEST_BYTES = 1024 * 1024 + 64;

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
  readonly #small = new Set<BudgetWaiter>();
  readonly #large = new Set<BudgetWaiter>();
  #waking = false;

  constructor(readonly capacityBytes: number) {}

  get usedBytes(): number {
    return this.#usedBytes;
  }

  get waiting(): number {
    return this.#small.size + this.#large.size;
  }

  stats(): InFlightBudgetStats {
    return {
      capacityBytes: this.capacityBytes,
      inFlightBytes: this.#usedBytes,
      peakInFlightBytes: this.#peakBytes,
      waitingSessions: this.waiting,
    };
  }

  /**
   * Takes `bytes` if they fit and no other session waits ahead of `taker` in its line. On false
   * the caller queues itself with wait(). A request bigger than the whole budget still runs alone
   * (when nothing else is in flight), so it cannot wait forever.
   */
  tryTake(bytes: number, taker: BudgetWaiter): boolean {
    const line = bytes <= SMALL_REQUEST_BYTES ? this.#small : this.#large;
    if (line.size > 0 && first(line) !== taker) return false;
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
    if (this.#small.size > 0 || this.#large.size > 0) this.#wake();
  }

  /** Queues `waiter` in the line for a request of `bytes` (a waiter already there keeps its place). */
  wait(waiter: BudgetWaiter, bytes: number): void {
    const [line, other] = bytes <= SMALL_REQUEST_BYTES ? [this.#small, this.#large] : [this.#large, this.#small];
    this.#leaveLine(other, waiter);
    line.add(waiter);
  }

  /** Leaves the queue (got its budget, is now limited by its own cap, or went away). */
  leave(waiter: BudgetWaiter): void {
    this.#leaveLine(this.#small, waiter);
    this.#leaveLine(this.#large, waiter);
  }

  #leaveLine(line: Set<BudgetWaiter>, waiter: BudgetWaiter): void {
    const wasHead = line.size > 0 && first(line) === waiter;
    if (line.delete(waiter) && wasHead && line.size > 0) this.#wake();
  }

  #add(bytes: number): void {
    this.#usedBytes += bytes;
    if (this.#usedBytes > this.#peakBytes) this.#peakBytes = this.#usedBytes;
  }

  /** Lets waiters in, line by line, until each line's head cannot proceed (it stays first). */
  #wake(): void {
    if (this.#waking) return;
    this.#waking = true;
    try {
      for (const line of [this.#small, this.#large]) {
        let previous: BudgetWaiter | undefined;
        for (let head = first(line); head !== undefined && head !== previous; head = first(line)) {
          previous = head;
          head.onBudget();
        }
      }
    } finally {
      this.#waking = false;
    }
  }
}

function first(line: Set<BudgetWaiter>): BudgetWaiter | undefined {
  for (const waiter of line) return waiter;
  return undefined;
}
