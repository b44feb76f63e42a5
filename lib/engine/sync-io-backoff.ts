// When reads or writes may run synchronously on the event loop. A synchronous call slower than
// its threshold was not a page-cache copy (a read that missed the cache, a write the kernel held
// back to flush dirty pages): calls then go back to the thread pool (where several overlap, and
// the event loop keeps serving sockets) for a period that starts at MIN_MS and doubles with every
// slow call up to MAX_MS, and a fast call resets it. A cold or saturated disk thus stalls the
// event loop for at most one call per period (and reaches the 1 s period within about 2 s), while
// one slow call on a warm disk sends calls to the thread pool only briefly.

const MIN_MS = 5;
const MAX_MS = 1000;

export class SyncIoBackoff {
  /** Time (performance.now() scale) before which calls use the thread pool. */
  private asyncUntil = 0;
  /** The current period; 0 after a fast synchronous call. */
  private periodMs = 0;

  /** `slowMs`: a synchronous call that takes longer did not stay in the page cache. */
  constructor(private readonly slowMs: number) {}

  /** May a call issued at `now` run synchronously? */
  allowsSync(now: number): boolean {
    return now >= this.asyncUntil;
  }

  /** Runs `call` (a synchronous read or write) and notes how long it took. */
  timed<T>(call: () => T): T {
    const started = performance.now();
    const result = call();
    this.record(started, performance.now());
    return result;
  }

  /** Notes a synchronous call that ran from `started` to `finished` (milliseconds). */
  record(started: number, finished: number): void {
    if (finished - started > this.slowMs) {
      this.periodMs = Math.min(MAX_MS, this.periodMs === 0 ? MIN_MS : 2 * this.periodMs);
      this.asyncUntil = finished + this.periodMs;
    } else {
      this.periodMs = 0;
    }
  }
}
