// Many tiny metadata calls (link, stat) on the main thread in short synchronous runs, yielding to
// the event loop between runs. One such call takes a few microseconds to a few tens in the kernel;
// sending each through the thread pool costs a round trip as large again, and calls into one
// folder serialise on its lock anyway, so concurrent promises buy no parallelism, only overhead.

/** Calls per run before yielding (a run stays well under a millisecond or two). */
export const SYNC_CALLS_PER_TURN = 32;

/** Runs `call` over `items` in order, synchronously in runs of `perTurn`, yielding between runs. */
export async function inSyncRuns<T>(items: readonly T[], call: (item: T) => void, perTurn = SYNC_CALLS_PER_TURN): Promise<void> {
  for (let start = 0; start < items.length; start += perTurn) {
    const end = Math.min(items.length, start + perTurn);
    for (let index = start; index < end; index++) call(items[index] as T);
    if (end < items.length) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
