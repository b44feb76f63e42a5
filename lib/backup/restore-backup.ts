// Restoring: into a new bundle (a plain convert from the backup), or over a live bundle, where
// only bands that differ are rewritten through the engine, so the restore is tracked as changes
// and the next backup sees exactly what it altered.

import { type BlockDevice, isAllZero } from '../block-device.js';
import type { SparseBundle } from '../engine/sparse-bundle.js';
import { SbmError } from '../errors.js';
import { BundleSession } from '../session/bundle-session.js';
import type { CopyProgress } from '../copy-device.js';

export interface OverwriteResult {
  readonly bandsWritten: number;
  readonly bandsTrimmed: number;
  readonly bytesWritten: number;
}

/** Makes `target` byte-identical to `source`, touching only the bands that differ. */
export async function overwriteBundle(
  source: BlockDevice,
  target: SparseBundle,
  options: { readonly onProgress?: (progress: CopyProgress) => void } = {},
): Promise<OverwriteResult> {
  if (source.sizeBytes !== target.sizeBytes) await new BundleSession(target).resize(source.sizeBytes);
  if (source.sizeBytes !== target.sizeBytes) {
    throw new SbmError('SBM_INTERNAL', `restore target is ${target.sizeBytes} bytes after resizing to ${source.sizeBytes}`);
  }
  const bandSize = target.bandSizeBytes;
  let bandsWritten = 0;
  let bandsTrimmed = 0;
  let bytesWritten = 0;
  const targetBands = new Set(target.bandsPresent());
  let bytesRead = 0;
  const report = (offset: number) =>
    options.onProgress?.({ bytesDone: Math.min(offset, source.sizeBytes), bytesTotal: source.sizeBytes, bytesRead, bytesWritten });
  for (let offset = 0; offset < source.sizeBytes; offset += bandSize) {
    if (offset > 0) report(offset);
    const length = Math.min(bandSize, source.sizeBytes - offset);
    // Both sides unallocated: nothing to compare (keeps a restore of a sparse disk cheap).
    if (!targetBands.has(offset / bandSize) && (await source.extents(offset, length)).every((extent) => extent.kind !== 'data')) continue;
    const wanted = await source.read(offset, length);
    const current = await target.read(offset, length);
    bytesRead += length;
    if (wanted.equals(current)) continue;
    if (isAllZero(wanted)) {
      await target.trim(offset, length);
      bandsTrimmed++;
    } else {
      await target.write(offset, wanted);
      bandsWritten++;
      bytesWritten += length;
    }
  }
  report(source.sizeBytes);
  await target.flush();
  return { bandsWritten, bandsTrimmed, bytesWritten };
}
