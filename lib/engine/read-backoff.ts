// When small reads may run synchronously on the event loop. A synchronous read slower than
// SLOW_READ_MS was not served from the page cache; reads then go back to the thread pool (where
// several device reads overlap) for a period that starts at MIN_MS and doubles with every slow read
// up to MAX_MS, and a fast read resets it. A cold disk thus stalls the event loop for at most one
// read per period (and reaches the 1 s period within about 2 s), while one page-cache miss on a
// warm disk sends reads to the thread pool only briefly: a disk partly in the page cache keeps
// its fast synchronous path for the reads that hit it.

const SLOW_READ_MS = 1;
const MIN_MS = 5;
const MAX_MS = 1000;

export class ReadBackoff {
  /** Time (performance.now() scale) before which reads use the thread pool. */
  private asyncUntil = 0;
  /** The current period; 0 after a fast synchronous read. */
  private periodMs = 0;

  /** May a read issued at `now` run synchronously? */
  allowsSync(now: number): boolean {
    return now >= this.asyncUntil;
  }

  /** Notes a synchronous read that ran from `started` to `finished` (milliseconds). */
  record(started: number, finished: number): void {
    if (finished - started > SLOW_READ_MS) {
      this.periodMs = Math.min(MAX_MS, this.periodMs === 0 ? MIN_MS : 2 * this.periodMs);
      this.asyncUntil = finished + this.periodMs;
    } else {
      this.periodMs = 0;
    }
  }
}
