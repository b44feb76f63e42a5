// The comparing core of `sbm sync`: for each band of a plan, read the source, compare it with the
// bundle and write only the 64 KiB chunks that differ. A band wholly in the plan is hashed while
// it is read; when that hash equals the one the record trusts for the bundle's band, the bundle
// side is not read at all. Writes go through the SyncTarget (the engine), so each changed band is
// tracked before the write is acknowledged and shared band files are copied first.
//
//   source band   |--A--|--B--|--C--|--D--|     chunks of COMPARE_CHUNK_BYTES
//   bundle band   |--A--|--b--|--C--|-----|     B differs: written; D: data over zeros: written
//                                               an all-zero chunk that differs is zeroed instead

import { createHash } from 'node:crypto';
import { type BlockDevice, isAllZero } from '../block-device.js';
import { mapLimit } from '../map-limit.js';
import type { SyncTarget } from './sync-target.js';

export const COMPARE_CHUNK_BYTES = 64 * 1024;
/** Bands up to this size are compared whole in memory (hash first); larger ones piece by piece. */
export const MAX_WHOLE_BAND_BYTES = 64 * 1024 * 1024;
const BANDS_IN_FLIGHT = 2;

export interface ByteRun {
  readonly offset: number;
  readonly length: number;
}

/** One band to compare: all of it, or only some runs of it (inside the band, in order). */
export interface BandWork {
  readonly bandIndex: number;
  readonly runs: 'whole' | readonly ByteRun[];
}

export interface BandPassOptions {
  /** The hash the record vouches for as the bundle's band content, if any. */
  readonly trustedHash: (bandIndex: number) => string | undefined;
  readonly onBytes?: (bytes: number) => void;
  readonly checkAborted?: () => void;
}

export interface BandPassResult {
  bytesRead: number;
  bandsCompared: number;
  bandsWritten: number;
  /** For each band compared: its hash now, or null when only part of it was read and it changed. */
  readonly hashes: Map<number, string | null>;
}

export async function runBandPass(
  source: BlockDevice,
  target: SyncTarget,
  work: Iterable<BandWork>,
  options: BandPassOptions,
): Promise<BandPassResult> {
  const result: BandPassResult = { bytesRead: 0, bandsCompared: 0, bandsWritten: 0, hashes: new Map() };
  await mapLimit(work, BANDS_IN_FLIGHT, async (item) => {
    options.checkAborted?.();
    const bandStart = item.bandIndex * target.bandSizeBytes;
    const bandLength = Math.min(target.bandSizeBytes, target.sizeBytes - bandStart);
    result.bandsCompared++;
    let written: boolean;
    if (item.runs === 'whole' && bandLength <= MAX_WHOLE_BAND_BYTES) {
      written = await wholeBand(source, target, bandStart, bandLength, item.bandIndex, options, result);
    } else {
      const runs = item.runs === 'whole' ? pieces(bandStart, bandLength) : item.runs;
      written = false;
      for (const run of runs) {
        options.checkAborted?.();
        const sourceBytes = Buffer.allocUnsafe(run.length);
        const sourceRead = await readSource(source, run.offset, sourceBytes); // not `+= await`: lanes interleave
        result.bytesRead += sourceRead;
        const bundleBytes = Buffer.allocUnsafe(run.length);
        await target.readInto(run.offset, bundleBytes);
        result.bytesRead += run.length;
        if (await writeDifferences(target, run.offset, sourceBytes, bundleBytes)) written = true;
        options.onBytes?.(run.length);
      }
      const kept = options.trustedHash(item.bandIndex);
      result.hashes.set(item.bandIndex, written ? null : (kept ?? null));
    }
    if (written) result.bandsWritten++;
  });
  return result;
}

async function wholeBand(
  source: BlockDevice,
  target: SyncTarget,
  bandStart: number,
  bandLength: number,
  bandIndex: number,
  options: BandPassOptions,
  result: BandPassResult,
): Promise<boolean> {
  const sourceBytes = Buffer.allocUnsafe(bandLength);
  const sourceRead = await readSource(source, bandStart, sourceBytes); // not `+= await`: lanes interleave
  result.bytesRead += sourceRead;
  const hash = bandHash(sourceBytes);
  result.hashes.set(bandIndex, hash);
  options.onBytes?.(bandLength);
  if (options.trustedHash(bandIndex) === hash) return false;
  const bundleBytes = Buffer.allocUnsafe(bandLength);
  await target.readInto(bandStart, bundleBytes);
  result.bytesRead += bandLength;
  return writeDifferences(target, bandStart, sourceBytes, bundleBytes);
}

export function bandHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url');
}

/** Reads the source's data runs into `target` and zero-fills its holes; returns the bytes read. */
async function readSource(source: BlockDevice, offset: number, target: Buffer): Promise<number> {
  // A source whose size is not a multiple of 512 ends inside the bundle's last sector: zeros there.
  const inside = Math.max(0, Math.min(target.length, source.sizeBytes - offset));
  target.fill(0, inside);
  if (inside === 0) return 0;
  let bytesRead = 0;
  for (const extent of await source.extents(offset, inside)) {
    const view = target.subarray(extent.offset - offset, extent.offset - offset + extent.length);
    if (extent.kind === 'data') {
      await source.readInto(extent.offset, view);
      bytesRead += extent.length;
    } else {
      view.fill(0);
    }
  }
  return bytesRead;
}

/**
 * Writes the chunks where `wanted` differs from `current`: consecutive differing chunks of one
 * kind (all zeros, or data) in one call. Returns true when anything was written.
 */
async function writeDifferences(target: SyncTarget, offset: number, wanted: Buffer, current: Buffer): Promise<boolean> {
  let written = false;
  let runStart = -1;
  let runZero = false;
  const flushRun = async (end: number): Promise<void> => {
    if (runStart < 0) return;
    if (runZero) await target.zero(offset + runStart, end - runStart);
    else await target.write(offset + runStart, wanted.subarray(runStart, end));
    written = true;
    runStart = -1;
  };
  for (let at = 0; at < wanted.length; at += COMPARE_CHUNK_BYTES) {
    const end = Math.min(wanted.length, at + COMPARE_CHUNK_BYTES);
    if (wanted.compare(current, at, end, at, end) === 0) {
      await flushRun(at);
      continue;
    }
    const zero = isAllZero(wanted.subarray(at, end));
    if (runStart >= 0 && zero !== runZero) await flushRun(at);
    if (runStart < 0) {
      runStart = at;
      runZero = zero;
    }
  }
  await flushRun(wanted.length);
  return written;
}

function pieces(start: number, length: number): ByteRun[] {
  const list: ByteRun[] = [];
  for (let at = 0; at < length; at += MAX_WHOLE_BAND_BYTES)
    list.push({ offset: start + at, length: Math.min(MAX_WHOLE_BAND_BYTES, length - at) });
  return list;
}
