// `sbm compact` (hdiutil compact's job for sbm's bundles): deletes bands that hold only zeros and
// cuts the zero tail off the others. Every change goes through the engine's trim, so it is a
// tracked change like any write (changed-bands lists the band) and copy-on-write applies: a band
// shared with a snapshot or backup is unlinked or copied before it is cut, never cut in place.
//
//   for each band file:  read it -> all zeros?  trim the whole band (the engine deletes the file)
//                                 -> else trim from the last non-zero 4 KiB block to the band's end
//                                    (the engine truncates the file)
//   flush once at the end (the deletions and truncations become durable together)

import { stat } from 'node:fs/promises';
import { isAllZero } from '../block-device.js';
import { fromSystemError } from '../errors.js';
import type { SparseBundle } from '../engine/sparse-bundle.js';

export interface CompactResult {
  readonly bandsRemoved: number;
  readonly bandsTrimmed: number;
  /** Bytes of band files given back (apparent sizes before minus after). */
  readonly bytesFreed: number;
  /** Names (lowercase hex) of the bands removed or trimmed. */
  readonly bands: string[];
}

/** Tails are cut at filesystem-block boundaries, so a kept block is never split. */
const TAIL_ALIGNMENT_BYTES = 4096;

export async function compactBundle(bundle: SparseBundle): Promise<CompactResult> {
  let bandsRemoved = 0;
  let bandsTrimmed = 0;
  let bytesFreed = 0;
  const bands: string[] = [];
  for (const bandIndex of bundle.bandsPresent()) {
    const bandStart = bandIndex * bundle.bandSizeBytes;
    const bandLength = Math.min(bundle.bandSizeBytes, bundle.sizeBytes - bandStart);
    if (bandLength <= 0) continue;
    const fileBytes = await bandFileBytes(bundle, bandIndex);
    const stored = Math.min(fileBytes, bandLength);
    const data = await bundle.read(bandStart, stored);
    const keep = Math.min(stored, Math.ceil(dataEnd(data) / TAIL_ALIGNMENT_BYTES) * TAIL_ALIGNMENT_BYTES);
    if (keep === fileBytes) continue;
    await bundle.trim(bandStart + keep, bandLength - keep);
    const after = keep === 0 ? 0 : await bandFileBytes(bundle, bandIndex);
    if (keep === 0) bandsRemoved++;
    else bandsTrimmed++;
    bytesFreed += fileBytes - after;
    bands.push(bandIndex.toString(16));
  }
  await bundle.flush();
  return { bandsRemoved, bandsTrimmed, bytesFreed, bands };
}

async function bandFileBytes(bundle: SparseBundle, bandIndex: number): Promise<number> {
  const info = await stat(bundle.bandPath(bandIndex)).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw fromSystemError(error, 'cannot read band file', bundle.bandPath(bandIndex));
  });
  return info?.size ?? 0;
}

/** One past the last non-zero byte (0 when all zeros), found from the end in 64 KiB steps. */
function dataEnd(data: Buffer): number {
  const step = 64 * 1024;
  for (let end = data.length; end > 0; end -= step) {
    const start = Math.max(0, end - step);
    const piece = data.subarray(start, end);
    if (isAllZero(piece)) continue;
    for (let index = piece.length - 1; index >= 0; index--) if (piece[index] !== 0) return start + index + 1;
  }
  return 0;
}
