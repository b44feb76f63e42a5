// The copy engine behind convert, export and restore: walks the source's extents, reads only
// allocated runs, skips blocks that are all zeros, and writes into a target that starts empty
// (a fresh bundle or a sparse file), so holes stay holes. A bounded window of chunks is in flight
// to overlap reads and writes.

import { type BlockDevice, isAllZero } from './block-device.js';
import { mapLimit } from './map-limit.js';

export interface CopyProgress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
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
}

export interface CopyResult {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly seconds: number;
}

const EXTENT_WINDOW_BYTES = 1024 * 1024 * 1024;

interface Chunk {
  readonly offset: number;
  readonly length: number;
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

  const copyChunk = async (chunk: Chunk): Promise<void> => {
    options.checkAborted?.();
    const data = await source.read(chunk.offset, chunk.length);
    bytesRead += chunk.length;
    // Write maximal runs of non-zero blocks, so zero blocks allocate nothing in the target.
    let runStart = -1;
    const flushRun = async (runEnd: number): Promise<void> => {
      if (runStart < 0) return;
      await target.write(chunk.offset + runStart, data.subarray(runStart, runEnd));
      bytesWritten += runEnd - runStart;
      runStart = -1;
    };
    for (let position = 0; position < data.length; position += zeroBlockBytes) {
      const end = Math.min(position + zeroBlockBytes, data.length);
      if (!isAllZero(data.subarray(position, end))) {
        if (runStart < 0) runStart = position;
      } else {
        await flushRun(position);
      }
    }
    await flushRun(data.length);
    bytesDone += chunk.length;
    options.onProgress?.({ bytesDone, bytesTotal: total });
  };

  for (let windowStart = 0; windowStart < total; windowStart += EXTENT_WINDOW_BYTES) {
    options.checkAborted?.();
    const windowLength = Math.min(EXTENT_WINDOW_BYTES, total - windowStart);
    const chunks: Chunk[] = [];
    for (const extent of await source.extents(windowStart, windowLength)) {
      if (extent.kind !== 'data') {
        bytesDone += extent.length;
        continue;
      }
      for (const chunk of splitAligned(extent.offset, extent.length, chunkBytes)) chunks.push(chunk);
    }
    await mapLimit(chunks, concurrency, copyChunk);
    options.onProgress?.({ bytesDone, bytesTotal: total });
  }
  await target.flush();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { bytesRead, bytesWritten, seconds };
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
