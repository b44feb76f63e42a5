// Runs `worker` over `items` with at most `limit` calls in flight, in order of start. The first
// failure stops new work and is rethrown once the calls already running have settled.

export async function mapLimit<T>(items: Iterable<T>, limit: number, worker: (item: T) => Promise<void>): Promise<void> {
  const iterator = items[Symbol.iterator]();
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    for (;;) {
      if (failure !== undefined) return;
      const next = iterator.next();
      if (next.done === true) return;
      try {
        await worker(next.value);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  const lanes: Promise<void>[] = [];
  for (let index = 0; index < Math.max(1, limit); index++) lanes.push(lane());
  await Promise.all(lanes);
  if (failure !== undefined) throw failure.error;
}
