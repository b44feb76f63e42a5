// Reads streamOptimized grains: each GTE points at a grain marker (u64 lba, u32 size) followed by
// `size` bytes of zlib data. Grains of one request are sorted by file offset and grouped into
// batches of neighbours (up to 8 MiB of file each); a pool of worker threads reads and inflates
// the batches in parallel (grain-inflater.ts does the checks and the zlib work).

import type { FileHandle } from 'node:fs/promises';
import { SbmError } from '../../lib/errors.js';
import { mapLimit } from '../../lib/map-limit.js';
import { type InflateBatch, maxCompressedBytes } from './grain-inflater.js';
import { inflatePool } from './inflate-pool.js';

export interface CompressedGrain {
  readonly grain: number;
  /** File byte offset of the grain marker. */
  readonly markerOffset: number;
  /** Where the wanted part of the inflated grain goes. */
  readonly view: Uint8Array;
  readonly offsetInGrain: number;
}

export interface CompressedSource {
  readonly handle: FileHandle;
  readonly path: string;
  readonly fileSize: number;
  readonly grainBytes: number;
  readonly grainSizeSectors: number;
  readonly capacityBytes: number;
}

const MAX_BATCH_BYTES = 2 * 1024 * 1024;
const BATCHES_IN_FLIGHT = 4;

export async function readCompressedGrains(source: CompressedSource, grains: readonly CompressedGrain[]): Promise<void> {
  const sorted = [...grains].sort((a, b) => a.markerOffset - b.markerOffset);
  const maxGrain = maxCompressedBytes(source.grainBytes) + 12;
  // Batches of grains close together in the file: one read and one worker task each.
  const batches: CompressedGrain[][] = [];
  for (const grain of sorted) {
    const batch = batches[batches.length - 1];
    const first = batch?.[0];
    const last = batch?.[batch.length - 1];
    if (batch !== undefined && first !== undefined && last !== undefined && grain.markerOffset - last.markerOffset <= maxGrain && grain.markerOffset + maxGrain - first.markerOffset <= MAX_BATCH_BYTES) {
      batch.push(grain);
    } else batches.push([grain]);
  }
  await mapLimit(batches, BATCHES_IN_FLIGHT, async (batch) => {
    const first = batch[0];
    const last = batch[batch.length - 1];
    if (first === undefined || last === undefined) return;
    const request: InflateBatch = {
      path: source.path,
      fileSize: source.fileSize,
      grainBytes: source.grainBytes,
      grainSizeSectors: source.grainSizeSectors,
      capacityBytes: source.capacityBytes,
      start: first.markerOffset,
      end: Math.min(source.fileSize, last.markerOffset + maxGrain),
      grains: batch.map(({ grain, markerOffset }) => ({ grain, markerOffset })),
    };
    const result = await inflatePool().run(request);
    if (result.failure !== undefined) {
      throw new SbmError('SBM_CORRUPT', result.failure.message, { path: source.path, grain: result.failure.grain });
    }
    batch.forEach((grain, index) => {
      const from = index * source.grainBytes + grain.offsetInGrain;
      grain.view.set(result.data.subarray(from, from + grain.view.length));
    });
  });
}
