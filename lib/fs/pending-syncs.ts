// Files whose fsync may finish after the code that wrote them has moved on. A backup's band copy
// used to hold its copy slot (and its band's memory) until the journal committed its fsync, so
// reading and hashing the next bands waited for the disk; now the slot is freed once the data is
// written, and the fsync runs meanwhile. Nothing counts as durable early: settleAfter() returns
// only when every fsync has finished, and a failed fsync (or close) fails it.

import type { FileHandle } from 'node:fs/promises';

/** Files waiting for their fsync at once (each holds a descriptor open); add() waits beyond this. */
const MAX_PENDING = 32;

export class PendingSyncs {
  private readonly pending = new Set<Promise<void>>();
  private failure: { readonly error: unknown } | undefined;

  /**
   * Takes `handle` over: fsyncs it, then closes it, in the background. Waits first while
   * MAX_PENDING files are pending.
   */
  async add(handle: FileHandle): Promise<void> {
    while (this.pending.size >= MAX_PENDING) await Promise.race(this.pending);
    const done = this.syncAndClose(handle).finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /** Never rejects: a failure is kept for settleAfter(). */
  private async syncAndClose(handle: FileHandle): Promise<void> {
    try {
      await handle.sync();
    } catch (error) {
      this.failure ??= { error };
    }
    try {
      await handle.close();
    } catch (error) {
      this.failure ??= { error };
    }
  }

  /**
   * Waits for `work`, then for every fsync it started (also when `work` failed: every handle gets
   * closed). The error of `work` comes first; else the first fsync or close failure.
   */
  async settleAfter<T>(work: Promise<T>): Promise<T> {
    let outcome: { readonly value: T } | { readonly error: unknown };
    try {
      outcome = { value: await work };
    } catch (error) {
      outcome = { error };
    }
    while (this.pending.size > 0) await Promise.all(this.pending);
    if ('error' in outcome) throw outcome.error;
    if (this.failure !== undefined) throw this.failure.error;
    return outcome.value;
  }
}
