// A small pool of worker threads for CPU-bound jobs the main thread should not run itself (VMDK
// grain inflation, band hashing). Workers are unref'd while idle, so the pool never keeps the
// process alive.
//
// A worker needs to load its modules before it takes jobs, so submit() returns undefined until
// one has said it is ready: the caller runs that job itself instead of waiting. Once a worker is
// ready, jobs go to the least loaded one. Run from TypeScript sources (tests under tsx) there is
// no compiled worker file and workers would not inherit tsx's loader: the pool never starts one,
// and every job runs on the calling thread.
//
// A worker script calls serveJobs() with its job function (see the bottom of the file).

import { type TransferListItem, Worker, parentPort } from 'node:worker_threads';
import { SbmError } from './errors.js';

/** What a worker sends back: the job's id, and either the job's own fields or `error`. */
export interface JobReply {
  readonly id: number;
  /** Sent once, when the worker has loaded and listens. */
  readonly ready?: boolean;
  /** The job threw: its message. */
  readonly error?: string;
}

interface Pending {
  readonly worker: Worker;
  readonly resolve: (reply: JobReply) => void;
  readonly reject: (error: Error) => void;
}

export class WorkerPool<Request, Reply extends JobReply> {
  private readonly workers: Worker[] = [];
  private readonly ready = new Set<Worker>();
  private readonly pending = new Map<number, Pending>();
  private readonly busy = new Map<Worker, number>();
  private nextId = 1;
  private readonly inline = import.meta.url.endsWith('.ts');

  /**
   * @param script the worker's compiled module (a URL relative to the pool's caller)
   * @param size workers to start
   * @param what names the jobs in errors ("inflate", "hash")
   */
  constructor(
    private readonly script: URL,
    private readonly size: number,
    private readonly what: string,
  ) {}

  /** Starts the workers now, so they are ready when the first jobs come. */
  prewarm(): void {
    if (this.inline) return;
    while (this.workers.length < this.size) this.workers.push(this.spawn());
  }

  /**
   * Sends `request` to the least loaded ready worker; undefined while none is ready, or while
   * even that one has `maxQueued` jobs (run the job yourself).
   */
  submit(request: Request, transfer: readonly TransferListItem[] = [], maxQueued = Infinity): Promise<Reply> | undefined {
    this.prewarm();
    const worker = this.pick();
    if (worker === undefined || (this.busy.get(worker) ?? 0) >= maxQueued) return undefined;
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { worker, resolve: resolve as (reply: JobReply) => void, reject });
      this.busy.set(worker, (this.busy.get(worker) ?? 0) + 1);
      worker.ref();
      worker.postMessage({ id, request }, transfer as TransferListItem[]);
    });
  }

  /** The ready worker with the fewest jobs queued; undefined while none is ready. */
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
    const worker = new Worker(this.script);
    worker.on('message', (reply: JobReply) => {
      if (reply.ready === true) {
        this.ready.add(worker);
        return;
      }
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      const left = (this.busy.get(worker) ?? 1) - 1;
      this.busy.set(worker, left);
      if (left === 0) worker.unref();
      waiting?.resolve(reply);
    });
    worker.on('error', (error) => this.fail(worker, error.message, error));
    worker.on('exit', (exitCode) => this.fail(worker, `exited with code ${exitCode}`));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
    return worker;
  }

  /** A dead worker fails the jobs it was given and leaves the pool (the next submit starts another). */
  private fail(worker: Worker, reason: string, cause?: unknown): void {
    const index = this.workers.indexOf(worker);
    if (index >= 0) this.workers.splice(index, 1);
    this.ready.delete(worker);
    this.busy.delete(worker);
    for (const [id, waiting] of this.pending) {
      if (waiting.worker !== worker) continue;
      this.pending.delete(id);
      waiting.reject(new SbmError('SBM_INTERNAL', `${this.what} worker failed: ${reason}`, {}, { cause }));
    }
  }
}

/**
 * The worker side: runs `job` for every request and posts its reply (transferring the buffers
 * it names), or the error's message; then tells the pool this worker is ready.
 */
export function serveJobs<Request>(job: (request: Request) => { reply: object; transfer?: TransferListItem[] }): void {
  const port = parentPort;
  if (port === null) return;
  port.on('message', ({ id, request }: { id: number; request: Request }) => {
    try {
      const { reply, transfer } = job(request);
      port.postMessage({ ...reply, id }, transfer ?? []);
    } catch (error) {
      port.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
    }
  });
  port.postMessage({ id: 0, ready: true });
}
