// SHA-256 of whole bands for a backup run. Hashing is most of the CPU a backup spends (50
// changed 8 MiB bands are 400 MiB to hash), and on the main thread it held up the reads and
// writes of the next bands. A worker thread takes part of it: a band read into shared memory
// goes to the worker without a copy while the worker has fewer than two bands to hash;
// otherwise the calling thread hashes it, so both cores hash and neither waits.

import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { debugLog } from '../debug-log.js';
import { type JobReply, WorkerPool } from '../worker-pool.js';

interface HashReply extends JobReply {
  readonly sha256?: string;
}

/** Bands given to a worker (the one it hashes and one waiting) before the calling thread hashes the next itself. */
const MAX_QUEUED_PER_WORKER = 2;
const MAX_WORKERS = 3;
const debug = debugLog('sbm:backup');

export interface HasherStats {
  /** Hashed on the calling thread. */
  inline: number;
  /** Hashed on a worker. */
  offloaded: number;
}

export const hasherStats: HasherStats = { inline: 0, offloaded: 0 };

let pool: WorkerPool<Uint8Array, HashReply> | undefined;

function hashPool(): WorkerPool<Uint8Array, HashReply> {
  pool ??= new WorkerPool(
    new URL('./hash-worker.js', import.meta.url),
    Math.max(1, Math.min(MAX_WORKERS, availableParallelism() - 1)),
    'hash',
  );
  return pool;
}

/** Starts the hash workers, so they are ready by the time the first bands have been read. */
export function prewarmHasher(): void {
  hashPool().prewarm();
}

/**
 * Hex SHA-256 of `data`: on a worker when `data` is in shared memory and a worker is free, else
 * here. A worker that fails (or dies) costs the run nothing but time: the band is hashed here.
 */
export async function sha256Of(data: Buffer): Promise<string> {
  const offloaded = data.buffer instanceof SharedArrayBuffer ? hashPool().submit(data, [], MAX_QUEUED_PER_WORKER) : undefined;
  const reply = await offloaded?.catch((error: unknown) => {
    debug('hash worker failed, hashing here: %s', error instanceof Error ? error.message : String(error));
    return undefined;
  });
  if (reply?.sha256 !== undefined) {
    hasherStats.offloaded++;
    return reply.sha256;
  }
  if (reply?.error !== undefined) debug('hash worker failed, hashing here: %s', reply.error);
  hasherStats.inline++;
  return createHash('sha256').update(data).digest('hex');
}
