// Reads streamOptimized grains: each GTE points at a grain marker (u64 lba, u32 size) followed by
// `size` bytes of zlib data. Grains of one request are sorted by file offset and fetched in merged
// reads; inflation runs on the libuv threadpool (async zlib), several grains at a time.
//
// Every known writer emits RFC 1950 zlib although VDF5 names RFC 1951: try zlib, and fall back
// to raw deflate only when the two header bytes are not a zlib header.

import type { FileHandle } from 'node:fs/promises';
import { inflate, inflateRaw, type InputType, type ZlibOptions } from 'node:zlib';
import { SbmError } from '../../lib/errors.js';
import { mapLimit } from '../../lib/map-limit.js';
import { decodeStruct, toSafeNumber } from './binary-struct.js';
import { GRAIN_MARKER } from './sparse-header.js';
import { readExact } from './vmdk-extent.js';

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

const MAX_BATCH_BYTES = 8 * 1024 * 1024;
const INFLATES_IN_FLIGHT = 4;
const READS_IN_FLIGHT = 4;

function inflateAsync(data: InputType, raw: boolean, options: ZlibOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, result: Buffer): void => (error === null ? resolve(result) : reject(error));
    if (raw) inflateRaw(data, options, done);
    else inflate(data, options, done);
  });
}

function isZlibHeader(data: Uint8Array): boolean {
  const b0 = data[0] ?? 0;
  const b1 = data[1] ?? 0;
  return (b0 & 0x0f) === 8 && ((b0 << 8) | b1) % 31 === 0;
}

/** Upper bound of a compressed grain's size: deflate grows incompressible data only slightly. */
function maxCompressedBytes(grainBytes: number): number {
  return grainBytes + Math.ceil(grainBytes / 1000) + 1024;
}

export async function readCompressedGrains(source: CompressedSource, grains: readonly CompressedGrain[]): Promise<void> {
  const sorted = [...grains].sort((a, b) => a.markerOffset - b.markerOffset);
  const maxGrain = maxCompressedBytes(source.grainBytes) + 12;
  // Batches of grains close together in the file: one read each.
  const batches: CompressedGrain[][] = [];
  for (const grain of sorted) {
    const batch = batches[batches.length - 1];
    const first = batch?.[0];
    const last = batch?.[batch.length - 1];
    if (batch !== undefined && first !== undefined && last !== undefined && grain.markerOffset - last.markerOffset <= maxGrain && grain.markerOffset + maxGrain - first.markerOffset <= MAX_BATCH_BYTES) {
      batch.push(grain);
    } else batches.push([grain]);
  }
  await mapLimit(batches, READS_IN_FLIGHT, async (batch) => {
    const first = batch[0];
    const last = batch[batch.length - 1];
    if (first === undefined || last === undefined) return;
    const start = first.markerOffset;
    const end = Math.min(source.fileSize, last.markerOffset + maxGrain);
    const buffer = Buffer.allocUnsafe(end - start);
    await readExact(source.handle, buffer, start, source.path);
    await mapLimit(batch, INFLATES_IN_FLIGHT, (grain) => inflateGrain(source, grain, buffer, start));
  });
}

async function inflateGrain(source: CompressedSource, grain: CompressedGrain, buffer: Buffer, bufferStart: number): Promise<void> {
  const { path } = source;
  const at = grain.markerOffset - bufferStart;
  const marker = decodeStruct(GRAIN_MARKER, buffer, at);
  const expectedLba = grain.grain * source.grainSizeSectors;
  const lba = toSafeNumber(marker.lba as bigint, 'grain marker lba', path);
  const size = marker.size as number;
  const where = `grain ${grain.grain} (marker at byte ${grain.markerOffset})`;
  if (lba !== expectedLba) {
    throw new SbmError('SBM_CORRUPT', `${path}: ${where} is marked for sector ${lba}, expected ${expectedLba}`, { path, grain: grain.grain });
  }
  if (size === 0 || size > maxCompressedBytes(source.grainBytes)) {
    throw new SbmError('SBM_CORRUPT', `${path}: ${where} has an impossible compressed size of ${size} bytes`, { path, grain: grain.grain });
  }
  if (grain.markerOffset + 12 + size > source.fileSize) {
    throw new SbmError('SBM_CORRUPT', `${path}: ${where} runs past end of file`, { path, grain: grain.grain });
  }
  let payload: Buffer;
  if (at + 12 + size <= buffer.length) payload = buffer.subarray(at + 12, at + 12 + size);
  else {
    payload = Buffer.allocUnsafe(size);
    await readExact(source.handle, payload, grain.markerOffset + 12, path);
  }
  let inflated: Buffer;
  try {
    inflated = await inflateAsync(payload, !isZlibHeader(payload), { maxOutputLength: source.grainBytes, chunkSize: Math.max(16 * 1024, source.grainBytes) });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SbmError('SBM_CORRUPT', `${path}: ${where} does not inflate: ${reason}`, { path, grain: grain.grain });
  }
  const grainStart = grain.grain * source.grainBytes;
  const required = Math.min(source.grainBytes, source.capacityBytes - grainStart);
  // The last grain may inflate short (only its part inside the capacity); no other grain may.
  if (inflated.length < required) {
    throw new SbmError('SBM_CORRUPT', `${path}: ${where} inflates to ${inflated.length} of ${required} bytes`, { path, grain: grain.grain });
  }
  const wanted = grain.view.length;
  const available = Math.max(0, Math.min(wanted, inflated.length - grain.offsetInGrain));
  grain.view.set(inflated.subarray(grain.offsetInGrain, grain.offsetInGrain + available));
  if (available < wanted) grain.view.fill(0, available);
}
