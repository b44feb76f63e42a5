// The copy engine behind convert, export and restore: walks the source's extents, reads only
// allocated runs, skips blocks that are all zeros, and writes into a target that starts empty
// (a fresh bundle or a sparse file), so holes stay holes. A bounded window of chunks is in flight
// to overlap reads and writes.
//
//   source extents   |data|hole|data|..zero..|data|        |data|
//   chunks           [-------- chunk k --------)[------ chunk k+1 ------)
//   spans read       [=====================]             [====)
//
// Data extents of one chunk that lie close together (gap <= MERGE_GAP_BYTES) are read as one span
// into a reused chunk buffer: one source read instead of one per extent (a stream VMDK's grains
// between zero grains would otherwise cost a worker round trip each). The gaps read as zeros and
// the zero scan keeps them out of the target.

import { type BlockDevice, nonZeroBlockRuns } from './block-device.js';
import { mapLimit } from './map-limit.js';

export interface CopyProgress {
  /** How far along the disk the copy is, holes included. */
  readonly bytesDone: number;
  readonly bytesTotal: number;
  /** Bytes actually read from the source and written to the target so far (holes skipped cost none). */
  readonly bytesRead?: number;
  readonly bytesWritten?: number;
}

export interface CopyOptions {
  /** Bytes per read; chunks never cross a multiple of this, so they align with bands. */
  readonly chunkBytes?: number;
  /** Zero detection granularity inside a chunk. */
  readonly zeroBlockBytes?: number;
  /** Chunks in flight at once. */
  readonly concurrency?: number;
  readonly onProgress?: (progress: CopyProgress) => void;
  /** Checked between chunks; throw from it to abort (e.g. on SIGINT). */
  readonly checkAborted?: () => void;
  /**
   * Told when every write of the chunk-aligned range [offset, offset+length) has completed (only
   * for chunks that held data). Convert starts the durable sync of a finished band here, while
   * the next bands are copied. Must not throw; report failures through its own channel.
   */
  readonly onChunkWritten?: (offset: number, length: number) => void;
}

export interface CopyResult {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly seconds: number;
}

/**
 * A source that can only be read well front to back, in one pass (a compressed stream): it
 * copies itself into an empty target with the same options and result as copyDevice.
 */
export interface CopiesItself {
  copyInOrder(target: BlockDevice, options: CopyOptions): Promise<CopyResult>;
}

export function copiesItself(source: BlockDevice): source is BlockDevice & CopiesItself {
  return typeof (source as Partial<CopiesItself>).copyInOrder === 'function';
}

const EXTENT_WINDOW_BYTES = 1024 * 1024 * 1024;
/** Holes and zero runs up to this size between two data extents are read rather than split on. */
export const MERGE_GAP_BYTES = 256 * 1024;

interface Chunk {
  readonly offset: number;
  readonly length: number;
}

/** One chunk-aligned range and the spans of it to read, in order. */
interface ChunkTask {
  readonly chunkStart: number;
  readonly chunkLength: number;
  readonly spans: Chunk[];
}

export async function copyDevice(source: BlockDevice, target: BlockDevice, options: CopyOptions = {}): Promise<CopyResult> {
  const chunkBytes = options.chunkBytes ?? 4 * 1024 * 1024;
  const zeroBlockBytes = options.zeroBlockBytes ?? 64 * 1024;
  const concurrency = options.concurrency ?? 4;
  const started = process.hrtime.bigint();
  let bytesRead = 0;
  let bytesWritten = 0;
  let bytesDone = 0;
  const total = source.sizeBytes;
  // Chunk buffers are reused across chunks: at most `concurrency` exist, and no large buffer is
  // left to the garbage collector per chunk. They are shared memory, so a reader that decodes in
  // worker threads (VMDK streamOptimized) can decode straight into them.
  const freeBuffers: Buffer[] = [];

  const copySpan = async (span: Chunk, buffer: Buffer): Promise<void> => {
    const data = buffer.subarray(0, span.length);
    await source.readInto(span.offset, data);
    bytesRead += span.length;
    // Write maximal runs of non-zero blocks, so zero blocks allocate nothing in the target.
    for (const run of nonZeroBlockRuns(data, zeroBlockBytes, span.offset)) {
      await target.write(span.offset + run.start, data.subarray(run.start, run.end));
      bytesWritten += run.end - run.start;
    }
  };

  const copyChunk = async (task: ChunkTask): Promise<void> => {
    options.checkAborted?.();
    const buffer = freeBuffers.pop() ?? Buffer.from(new SharedArrayBuffer(chunkBytes));
    try {
      for (const span of task.spans) await copySpan(span, buffer);
    } finally {
      freeBuffers.push(buffer);
    }
    bytesDone += task.spans.reduce((sum, span) => sum + span.length, 0);
    options.onChunkWritten?.(task.chunkStart, task.chunkLength);
    options.onProgress?.({ bytesDone, bytesTotal: total, bytesRead, bytesWritten });
  };

  for (let windowStart = 0; windowStart < total; windowStart += EXTENT_WINDOW_BYTES) {
    options.checkAborted?.();
    const windowLength = Math.min(EXTENT_WINDOW_BYTES, total - windowStart);
    const tasks = chunkTasks(await source.extents(windowStart, windowLength), chunkBytes, total);
    let spanned = 0;
    for (const task of tasks) for (const span of task.spans) spanned += span.length;
    bytesDone += windowLength - spanned;
    await mapLimit(tasks, concurrency, copyChunk);
    options.onProgress?.({ bytesDone, bytesTotal: total, bytesRead, bytesWritten });
  }
  await target.flush();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { bytesRead, bytesWritten, seconds };
}

/**
 * Groups the data extents by chunk (multiples of `chunkBytes`) and merges neighbours within a
 * chunk whose gap is at most MERGE_GAP_BYTES into one span.
 */
export function chunkTasks(
  extents: Iterable<{ readonly offset: number; readonly length: number; readonly kind: string }>,
  chunkBytes: number,
  totalBytes: number,
): ChunkTask[] {
  const tasks: ChunkTask[] = [];
  for (const extent of extents) {
    if (extent.kind !== 'data') continue;
    for (const piece of splitAligned(extent.offset, extent.length, chunkBytes)) {
      const chunkStart = Math.floor(piece.offset / chunkBytes) * chunkBytes;
      let task = tasks[tasks.length - 1];
      if (task === undefined || task.chunkStart !== chunkStart) {
        task = { chunkStart, chunkLength: Math.min(chunkBytes, totalBytes - chunkStart), spans: [] };
        tasks.push(task);
      }
      const last = task.spans[task.spans.length - 1];
      if (last !== undefined && piece.offset - (last.offset + last.length) <= MERGE_GAP_BYTES) {
        task.spans[task.spans.length - 1] = { offset: last.offset, length: piece.offset + piece.length - last.offset };
      } else task.spans.push(piece);
    }
  }
  return tasks;
}

/** Splits [offset, offset+length) at multiples of `alignment`. */
export function* splitAligned(offset: number, length: number, alignment: number): Generator<Chunk> {
  let position = offset;
  const end = offset + length;
  while (position < end) {
    const next = Math.min(end, (Math.floor(position / alignment) + 1) * alignment);
    yield { offset: position, length: next - position };
    position = next;
  }
}
