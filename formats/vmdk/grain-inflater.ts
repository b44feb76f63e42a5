// Decodes one batch of streamOptimized grains from a buffer holding a contiguous file range:
// checks each grain marker (lba, size, inside the file) and inflates it. Pure and synchronous, so
// it runs the same in an inflate worker thread and, as a fallback, on the main thread.
//
// Every known writer emits RFC 1950 zlib although VDF5 names RFC 1951: try zlib, and fall back
// to raw deflate only when the two header bytes are not a zlib header.

import { closeSync, openSync, readSync } from 'node:fs';
import { inflateRawSync, inflateSync } from 'node:zlib';
import { GRAIN_MARKER } from './sparse-header.js';

export interface BatchGrain {
  readonly grain: number;
  /** File byte offset of the grain marker. */
  readonly markerOffset: number;
  /** The wanted part of the inflated grain: [offsetInGrain, offsetInGrain+length) ... */
  readonly offsetInGrain: number;
  readonly length: number;
  /** ... goes to this byte offset of the output (the shared buffer, or the returned `data`). */
  readonly at: number;
}

export interface InflateBatch {
  readonly path: string;
  readonly fileSize: number;
  readonly grainBytes: number;
  readonly grainSizeSectors: number;
  readonly capacityBytes: number;
  /** Pieces of the file at `path` the extent is made of, in order (a VMDK inside an OVA); absent: the whole file. */
  readonly segments?: ReadonlyArray<{ readonly fileOffset: number; readonly length: number }>;
  /** Extent range [start, end) covering every marker of the batch. */
  readonly start: number;
  readonly end: number;
  readonly grains: readonly BatchGrain[];
  /**
   * The caller's buffer, when it is shared memory: grains are inflated straight into it (no copy
   * back through the main thread) and `data` comes back empty.
   */
  readonly shared?: SharedArrayBuffer;
  /** Size of the returned `data` when there is no shared buffer. */
  readonly outputBytes: number;
}

/** The failure of one grain, turned into SBM_CORRUPT by the caller. */
export interface GrainFailure {
  readonly grain: number;
  readonly message: string;
}

export interface InflatedBatch {
  /** outputBytes bytes holding each grain's wanted part at its `at` (empty with a shared buffer). */
  readonly data: Uint8Array;
  readonly failure?: GrainFailure;
}

const MARKER_BYTES = GRAIN_MARKER.sizeBytes;
const readMarkerLba = GRAIN_MARKER.reader('lba');
const readMarkerSize = GRAIN_MARKER.reader('size');

/** Upper bound of a compressed grain's size: deflate grows incompressible data only slightly. */
export function maxCompressedBytes(grainBytes: number): number {
  return grainBytes + Math.ceil(grainBytes / 1000) + 1024;
}

export function isZlibHeader(data: Uint8Array): boolean {
  const b0 = data[0] ?? 0;
  const b1 = data[1] ?? 0;
  return (b0 & 0x0f) === 8 && ((b0 << 8) | b1) % 31 === 0;
}

/**
 * Inflates every grain of `batch` from `range` (the bytes of [start, end)). Grains whose data
 * runs past `range` are read through `readMore` (rare: an oversized compressed grain).
 */
export function inflateBatch(batch: InflateBatch, range: Buffer, readMore: (offset: number, length: number) => Buffer): InflatedBatch {
  const { grainBytes } = batch;
  const data =
    batch.shared === undefined ? new Uint8Array(Buffer.allocUnsafeSlow(batch.outputBytes).buffer, 0, batch.outputBytes) : new Uint8Array(0);
  const out = batch.shared === undefined ? data : new Uint8Array(batch.shared);
  const options = { maxOutputLength: grainBytes, chunkSize: Math.max(16 * 1024, grainBytes) };
  for (let index = 0; index < batch.grains.length; index++) {
    const item = batch.grains[index];
    if (item === undefined) continue;
    const where = `grain ${item.grain} (marker at byte ${item.markerOffset})`;
    const fail = (why: string): InflatedBatch => ({ data, failure: { grain: item.grain, message: `${batch.path}: ${where} ${why}` } });
    const at = item.markerOffset - batch.start;
    if (at < 0 || at + MARKER_BYTES > range.length) return fail('lies past end of file');
    const lba = readMarkerLba(range, at);
    const size = readMarkerSize(range, at);
    const expectedLba = BigInt(item.grain) * BigInt(batch.grainSizeSectors);
    if (lba !== expectedLba) return fail(`is marked for sector ${lba}, expected ${expectedLba}`);
    if (size === 0 || size > maxCompressedBytes(grainBytes)) return fail(`has an impossible compressed size of ${size} bytes`);
    if (item.markerOffset + MARKER_BYTES + size > batch.fileSize) return fail('runs past end of file');
    const payload =
      at + MARKER_BYTES + size <= range.length
        ? range.subarray(at + MARKER_BYTES, at + MARKER_BYTES + size)
        : readMore(item.markerOffset + MARKER_BYTES, size);
    let inflated: Buffer;
    try {
      inflated = isZlibHeader(payload) ? inflateSync(payload, options) : inflateRawSync(payload, options);
    } catch (error) {
      return fail(`does not inflate: ${error instanceof Error ? error.message : String(error)}`);
    }
    // The last grain may inflate short (only its part inside the capacity); no other grain may.
    const required = Math.min(grainBytes, batch.capacityBytes - item.grain * grainBytes);
    if (inflated.length < required) return fail(`inflates to ${inflated.length} of ${required} bytes`);
    // A short last grain reads as zeros past its inflated end.
    const wanted = inflated.subarray(
      Math.min(inflated.length, item.offsetInGrain),
      Math.min(inflated.length, item.offsetInGrain + item.length),
    );
    out.set(wanted, item.at);
    out.fill(0, item.at + wanted.length, item.at + item.length);
  }
  return { data };
}

/** Reused for every batch of this thread (runBatch is synchronous and keeps no view of it). */
let scratch = Buffer.alloc(0);

function readRange(fd: number, offset: number, length: number, reuse = false): Buffer {
  if (reuse && scratch.length < length) scratch = Buffer.allocUnsafeSlow(Math.max(length, 2 * scratch.length));
  const out = reuse ? scratch.subarray(0, length) : Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const got = readSync(fd, out, done, length - done, offset + done);
    if (got === 0) return out.subarray(0, done);
    done += got;
  }
  return out;
}

/** Reads extent bytes [offset, offset+length) laid over `segments` of the file (short at their end). */
function readSegments(fd: number, segments: NonNullable<InflateBatch['segments']>, offset: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let done = 0;
  let segmentStart = 0;
  for (const segment of segments) {
    const position = offset + done;
    if (done < length && position < segmentStart + segment.length && position >= segmentStart) {
      const take = Math.min(length - done, segmentStart + segment.length - position);
      const got = readRange(fd, segment.fileOffset + (position - segmentStart), take);
      got.copy(out, done);
      done += got.length;
      if (got.length < take) break;
    }
    segmentStart += segment.length;
  }
  return out.subarray(0, done);
}

/** Reads the batch's file range and inflates it (in a worker, or inline as a fallback). */
export function runBatch(batch: InflateBatch): InflatedBatch {
  // Opened per batch (microseconds against an 8 MiB batch): never a stale descriptor.
  const fd = openSync(batch.path, 'r');
  try {
    const read = (offset: number, length: number, reuse = false): Buffer =>
      batch.segments === undefined ? readRange(fd, offset, length, reuse) : readSegments(fd, batch.segments, offset, length);
    const range = read(batch.start, batch.end - batch.start, true);
    return inflateBatch(batch, range, (offset, length) => read(offset, length));
  } finally {
    closeSync(fd);
  }
}
