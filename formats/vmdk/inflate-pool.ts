// A small pool of worker threads that inflate streamOptimized grain batches in parallel (zlib is
// the bottleneck of stream input). Workers are unref'd while idle, so the pool never keeps the
// process alive.
//
// The calling thread inflates a batch itself (inline) while no worker has finished starting (a
// worker needs to load its modules first), instead of waiting. Once one is ready every batch goes
// to the workers: the calling thread stays free for the writes of convert, and the inflated
// grains' garbage stays off the main thread's heap. Opening a stream
// extent starts the workers early (prewarm), so they boot while the bundle is created.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { type InflateBatch, type InflatedBatch, runBatch } from './grain-inflater.js';

interface Pending {
  readonly resolve: (result: InflatedBatch) => void;
  readonly reject: (error: Error) => void;
}

interface Reply {
  readonly id: number;
  /** Sent once, when the worker has loaded and listens. */
  readonly ready?: boolean;
  readonly data?: Uint8Array;
  readonly failure?: InflatedBatch['failure'];
  readonly error?: string;
}

const MAX_WORKERS = 4;

export interface InflatePoolStats {
  /** Batches inflated on the calling thread. */
  inline: number;
  /** Batches sent to a worker. */
  offloaded: number;
}

class InflatePool {
  private readonly workers: Worker[] = [];
  private readonly ready = new Set<Worker>();
  private readonly pending = new Map<number, Pending>();
  private readonly busy = new Map<Worker, number>();
  private nextId = 1;
  readonly stats: InflatePoolStats = { inline: 0, offloaded: 0 };

  /**
   * Run from TypeScript sources (tests under tsx) there is no compiled worker file and workers do
   * not inherit tsx's loader: inflate on the calling thread. The compiled CLI always uses workers.
   */
  private readonly inline = import.meta.url.endsWith('.ts');

  constructor(private readonly size: number) {}

  /** Starts the workers now, so they are ready when the first batches come. */
  prewarm(): void {
    if (this.inline) return;
    while (this.workers.length < this.size) this.workers.push(this.spawn());
  }

  async run(batch: InflateBatch): Promise<InflatedBatch> {
    this.prewarm();
    const worker = this.inline ? undefined : this.pick();
    if (worker === undefined) {
      this.stats.inline++;
      try {
        return runBatch(batch);
      } catch (error) {
        throw fromSystemError(error, 'cannot read VMDK grains', batch.path);
      }
    }
    this.stats.offloaded++;
    const id = this.nextId++;
    return new Promise<InflatedBatch>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.busy.set(worker, (this.busy.get(worker) ?? 0) + 1);
      worker.ref();
      worker.postMessage({ id, batch });
    });
  }

  /** The ready worker with the fewest batches queued; undefined while none is ready. */
  private pick(): Worker | undefined {
    let best: Worker | undefined;
    let bestLoad = Infinity;
    for (const worker of this.ready) {
      const load = this.busy.get(worker) ?? 0;
      if (load < bestLoad) {
        best = worker;
        bestLoad = load;
      }
    }
    return best;
  }

  private spawn(): Worker {
    const worker = new Worker(new URL('./inflate-worker.js', import.meta.url));
    worker.on('message', (reply: Reply) => {
      if (reply.ready === true) {
        this.ready.add(worker);
        return;
      }
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      const left = (this.busy.get(worker) ?? 1) - 1;
      this.busy.set(worker, left);
      if (left === 0) worker.unref();
      if (waiting === undefined) return;
      if (reply.error !== undefined || reply.data === undefined) {
        waiting.reject(new SbmError('SBM_IO', `cannot read VMDK grains: ${reply.error ?? 'no data'}`));
      } else waiting.resolve({ data: reply.data, failure: reply.failure });
    });
    worker.on('error', (error) => this.fail(worker, error.message, error));
    worker.on('exit', (exitCode) => this.fail(worker, `exited with code ${exitCode}`));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
    return worker;
  }

  /** A dead worker fails everything it was given and leaves the pool (a new one replaces it). */
  private fail(worker: Worker, reason: string, cause?: unknown): void {
    const index = this.workers.indexOf(worker);
    if (index >= 0) this.workers.splice(index, 1);
    this.ready.delete(worker);
    if ((this.busy.get(worker) ?? 0) === 0) return;
    this.busy.delete(worker);
    // Requests are not tracked per worker; fail every pending one (rare: a worker crash).
    for (const [id, waiting] of this.pending) {
      this.pending.delete(id);
      waiting.reject(new SbmError('SBM_INTERNAL', `inflate worker failed: ${reason}`, {}, { cause }));
    }
  }
}

let shared: InflatePool | undefined;

/** The process-wide pool: one worker per core but one (the main thread reads and writes), 1 to 4. */
export function inflatePool(): InflatePool {
  shared ??= new InflatePool(Math.max(1, Math.min(MAX_WORKERS, availableParallelism() - 1)));
  return shared;
}

export type { InflatePool };
