// Walks a BlockDevice one grain table's coverage at a time (32 MiB with the default geometry) and
// yields only the grains that hold non-zero data, so exporters keep holes and zero grains
// unallocated. Reads are merged over runs of data grains (up to 8 MiB each); memory stays bounded
// by one window whatever the disk size.

import { type BlockDevice, isAllZero } from '../../lib/block-device.js';
import type { CopyOptions } from '../../lib/copy-device.js';

export interface DataGrain {
  readonly grainIndex: number;
  /** Exactly one grain; the last grain of a disk that is not a grain multiple is zero-padded. */
  readonly data: Buffer;
}

export interface GrainWindow {
  readonly gtIndex: number;
  readonly grains: readonly DataGrain[];
}

const MAX_READ_BYTES = 8 * 1024 * 1024;

export interface GrainWalkStats {
  bytesRead: number;
  bytesDone: number;
}

export async function* dataGrainWindows(
  source: BlockDevice,
  grainBytes: number,
  gtEntries: number,
  copy: CopyOptions | undefined,
  stats: GrainWalkStats,
): AsyncGenerator<GrainWindow> {
  const windowBytes = grainBytes * gtEntries;
  const total = source.sizeBytes;
  for (let windowStart = 0, gtIndex = 0; windowStart < total; windowStart += windowBytes, gtIndex++) {
    copy?.checkAborted?.();
    const windowEnd = Math.min(total, windowStart + windowBytes);
    // Grain indexes touched by data extents, in order.
    const wanted: number[] = [];
    for (const extent of await source.extents(windowStart, windowEnd - windowStart)) {
      if (extent.kind !== 'data') continue;
      const first = Math.floor(extent.offset / grainBytes);
      const last = Math.floor((extent.offset + extent.length - 1) / grainBytes);
      for (let grain = first; grain <= last; grain++) if (wanted[wanted.length - 1] !== grain) wanted.push(grain);
    }
    const grains: DataGrain[] = [];
    let index = 0;
    while (index < wanted.length) {
      const first = wanted[index] ?? 0;
      let count = 1;
      while (index + count < wanted.length && wanted[index + count] === first + count && (count + 1) * grainBytes <= MAX_READ_BYTES)
        count++;
      const start = first * grainBytes;
      const length = Math.min(total, start + count * grainBytes) - start;
      const data = await source.read(start, length);
      stats.bytesRead += length;
      for (let k = 0; k < count; k++) {
        let grain = data.subarray(k * grainBytes, Math.min(length, (k + 1) * grainBytes));
        if (isAllZero(grain)) continue;
        if (grain.length < grainBytes) {
          const padded = Buffer.alloc(grainBytes);
          grain.copy(padded);
          grain = padded;
        }
        grains.push({ grainIndex: first + k, data: grain });
      }
      index += count;
    }
    yield { gtIndex, grains };
    stats.bytesDone = windowEnd;
    copy?.onProgress?.({ bytesDone: windowEnd, bytesTotal: total });
  }
}
