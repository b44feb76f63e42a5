// Reads streamOptimized grains: each GTE points at a grain marker (u64 lba, u32 size) followed by
// `size` bytes of zlib data. Grains of one request are sorted by file offset and grouped into
// batches of neighbours (up to 2 MiB of file each); a pool of worker threads reads and inflates
// the batches in parallel (grain-inflater.ts does the checks and the zlib work). When the caller's
// buffer is shared memory the workers inflate straight into it; otherwise each batch's bytes are
// transferred back and copied into place.

import type { ExtentHandle, FileSegment } from './vmdk-extent.js';
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
  readonly handle: ExtentHandle;
  readonly path: string;
  readonly fileSize: number;
  readonly grainBytes: number;
  readonly grainSizeSectors: number;
  readonly capacityBytes: number;
  /** Pieces of the file at `path` the extent is made of (a VMDK inside an OVA); undefined: the whole file. */
  readonly segments: readonly FileSegment[] | undefined;
}

const MAX_BATCH_BYTES = 2 * 1024 * 1024;
const BATCHES_IN_FLIGHT = 4;

/** Starts the inflate workers ahead of the first read (they take tens of ms to load). */
export function prewarmInflation(): void {
  inflatePool().prewarm();
}

export async function readCompressedGrains(source: CompressedSource, grains: readonly CompressedGrain[]): Promise<void> {
  const sorted = [...grains].sort((a, b) => a.markerOffset - b.markerOffset);
  const maxGrain = maxCompressedBytes(source.grainBytes) + 12;
  // Batches of grains close together in the file: one read and one worker task each.
  const batches: CompressedGrain[][] = [];
  for (const grain of sorted) {
    const batch = batches[batches.length - 1];
    const first = batch?.[0];
    const last = batch?.[batch.length - 1];
    if (
      batch !== undefined &&
      first !== undefined &&
      last !== undefined &&
      grain.markerOffset - last.markerOffset <= maxGrain &&
      grain.markerOffset + maxGrain - first.markerOffset <= MAX_BATCH_BYTES
    ) {
      batch.push(grain);
    } else batches.push([grain]);
  }
  await mapLimit(batches, BATCHES_IN_FLIGHT, async (batch) => {
    const first = batch[0];
    const last = batch[batch.length - 1];
    if (first === undefined || last === undefined) return;
    // Views into shared memory (copyDevice's chunk buffers) are filled by the worker itself.
    const shared = sharedBufferOf(batch);
    let outputBytes = 0;
    const grains = batch.map(({ grain, markerOffset, view, offsetInGrain }) => {
      const at = shared === undefined ? outputBytes : view.byteOffset;
      outputBytes += view.length;
      return { grain, markerOffset, offsetInGrain, length: view.length, at };
    });
    const request: InflateBatch = {
      path: source.path,
      fileSize: source.fileSize,
      grainBytes: source.grainBytes,
      grainSizeSectors: source.grainSizeSectors,
      capacityBytes: source.capacityBytes,
      ...(source.segments === undefined ? {} : { segments: source.segments }),
      start: first.markerOffset,
      end: Math.min(source.fileSize, last.markerOffset + maxGrain),
      grains,
      shared,
      outputBytes: shared === undefined ? outputBytes : 0,
    };
    const result = await inflatePool().run(request);
    if (result.failure !== undefined) {
      throw new SbmError('SBM_CORRUPT', result.failure.message, { path: source.path, grain: result.failure.grain });
    }
    if (shared !== undefined) return;
    batch.forEach((grain, index) => {
      const at = grains[index]?.at ?? 0;
      grain.view.set(result.data.subarray(at, at + grain.view.length));
    });
  });
}

/** The SharedArrayBuffer every view of the batch lies in, if there is one. */
function sharedBufferOf(batch: readonly CompressedGrain[]): SharedArrayBuffer | undefined {
  const buffer = batch[0]?.view.buffer;
  if (!(buffer instanceof SharedArrayBuffer)) return undefined;
  return batch.every((grain) => grain.view.buffer === buffer) ? buffer : undefined;
}
