// The worker threads that inflate streamOptimized grain batches in parallel (zlib is the
// bottleneck of stream input), on the shared WorkerPool (lib/worker-pool.ts).
//
// The calling thread inflates a batch itself while no worker has finished starting, instead of
// waiting. Once one is ready every batch goes to the workers: the calling thread stays free for
// the writes of convert, and the inflated grains' garbage stays off the main thread's heap.
// Opening a stream extent starts the workers early (prewarm), so they boot while the bundle is
// created.

import { availableParallelism } from 'node:os';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { type JobReply, WorkerPool } from '../../lib/worker-pool.js';
import { type InflateBatch, type InflatedBatch, runBatch } from './grain-inflater.js';

const MAX_WORKERS = 4;

interface InflateReply extends JobReply {
  readonly data?: Uint8Array;
  readonly failure?: InflatedBatch['failure'];
}

export interface InflatePoolStats {
  /** Batches inflated on the calling thread. */
  inline: number;
  /** Batches sent to a worker. */
  offloaded: number;
}

class InflatePool {
  readonly stats: InflatePoolStats = { inline: 0, offloaded: 0 };
  private readonly workers: WorkerPool<InflateBatch, InflateReply>;

  constructor(size: number) {
    this.workers = new WorkerPool(new URL('./inflate-worker.js', import.meta.url), size, 'inflate');
  }

  /** Starts the workers now, so they are ready when the first batches come. */
  prewarm(): void {
    this.workers.prewarm();
  }

  async run(batch: InflateBatch): Promise<InflatedBatch> {
    const offloaded = this.workers.submit(batch);
    if (offloaded === undefined) {
      this.stats.inline++;
      try {
        return runBatch(batch);
      } catch (error) {
        throw fromSystemError(error, 'cannot read VMDK grains', batch.path);
      }
    }
    this.stats.offloaded++;
    const reply = await offloaded;
    if (reply.error !== undefined || reply.data === undefined) {
      throw new SbmError('SBM_IO', `cannot read VMDK grains: ${reply.error ?? 'no data'}`);
    }
    return { data: reply.data, failure: reply.failure };
  }
}

let shared: InflatePool | undefined;

/** The process-wide pool: one worker per core but one (the main thread reads and writes), 1 to 4. */
export function inflatePool(): InflatePool {
  shared ??= new InflatePool(Math.max(1, Math.min(MAX_WORKERS, availableParallelism() - 1)));
  return shared;
}

export type { InflatePool };
