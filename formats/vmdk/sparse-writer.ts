// Writes a monolithicSparse VMDK in qemu-img's layout, which qemu, libvmdk and VMware all read:
//
//   sector 0 header | 1..20 descriptor | RGD | redundant GTs | GD | GTs | pad to a grain | grains
//
// Every GT is preallocated (so both GDs are known up front and written first); grains are appended
// in LBA order, and each window's GT is written (twice) once its grains are in the file.

import type { FileHandle } from 'node:fs/promises';
import type { BlockDevice } from '../../lib/block-device.js';
import type { CopyOptions } from '../../lib/copy-device.js';
import { writeFully } from '../../lib/fs/read-fully.js';
import { SECTOR_SIZE, SPARSEFLAG_USE_REDUNDANT, SPARSEFLAG_VALID_NEWLINE_DETECTOR } from './constants.js';
import { type GrainWalkStats, dataGrainWindows } from './grain-source.js';
import { encodeSparseHeader } from './sparse-header.js';
import {
  WRITE_DESCRIPTOR_SECTORS,
  WRITE_GRAIN_BYTES,
  WRITE_GRAIN_SECTORS,
  WRITE_GT_ENTRIES,
  WRITE_GT_SECTORS,
  baseHeader,
  descriptorArea,
  writeGeometry,
} from './vmdk-writer-common.js';

export async function writeMonolithicSparse(
  source: BlockDevice,
  handle: FileHandle,
  path: string,
  fileName: string,
  copy: CopyOptions | undefined,
  stats: GrainWalkStats,
): Promise<number> {
  const { capacitySectors, gdEntries, gdSectors } = writeGeometry(source.sizeBytes, path);
  const rgdOffset = 1 + WRITE_DESCRIPTOR_SECTORS;
  const rgtStart = rgdOffset + gdSectors;
  const gdOffset = rgtStart + gdEntries * WRITE_GT_SECTORS;
  const gtStart = gdOffset + gdSectors;
  const metadataEnd = gtStart + gdEntries * WRITE_GT_SECTORS;
  const overHead = Math.ceil(metadataEnd / WRITE_GRAIN_SECTORS) * WRITE_GRAIN_SECTORS;

  const header = encodeSparseHeader({
    ...baseHeader(capacitySectors),
    flags: SPARSEFLAG_VALID_NEWLINE_DETECTOR | SPARSEFLAG_USE_REDUNDANT,
    rgdOffset: BigInt(rgdOffset),
    gdOffset: BigInt(gdOffset),
    overHead: BigInt(overHead),
  });
  const gd = Buffer.alloc(gdSectors * SECTOR_SIZE);
  const rgd = Buffer.alloc(gdSectors * SECTOR_SIZE);
  for (let index = 0; index < gdEntries; index++) {
    gd.writeUInt32LE(gtStart + index * WRITE_GT_SECTORS, index * 4);
    rgd.writeUInt32LE(rgtStart + index * WRITE_GT_SECTORS, index * 4);
  }
  await handle.truncate(overHead * SECTOR_SIZE);
  await writeFully(handle, header, 0);
  await writeFully(handle, descriptorArea('monolithicSparse', fileName, capacitySectors), SECTOR_SIZE);
  await writeFully(handle, rgd, rgdOffset * SECTOR_SIZE);
  await writeFully(handle, gd, gdOffset * SECTOR_SIZE);

  let nextSector = overHead;
  let bytesWritten = 0;
  for await (const window of dataGrainWindows(source, WRITE_GRAIN_BYTES, WRITE_GT_ENTRIES, copy, stats)) {
    if (window.grains.length === 0) continue;
    const gt = Buffer.alloc(WRITE_GT_SECTORS * SECTOR_SIZE);
    // Consecutive grains go out in one write.
    let runStart = 0;
    while (runStart < window.grains.length) {
      let runEnd = runStart + 1;
      while (
        runEnd < window.grains.length &&
        (window.grains[runEnd]?.grainIndex ?? -1) === (window.grains[runEnd - 1]?.grainIndex ?? -2) + 1
      )
        runEnd++;
      const run = window.grains.slice(runStart, runEnd);
      const firstSector = nextSector;
      for (const grain of run) {
        gt.writeUInt32LE(nextSector, (grain.grainIndex - window.gtIndex * WRITE_GT_ENTRIES) * 4);
        nextSector += WRITE_GRAIN_SECTORS;
      }
      const data = run.length === 1 ? (run[0]?.data ?? Buffer.alloc(0)) : Buffer.concat(run.map((grain) => grain.data));
      await writeFully(handle, data, firstSector * SECTOR_SIZE);
      bytesWritten += data.length;
      runStart = runEnd;
    }
    await writeFully(handle, gt, (gtStart + window.gtIndex * WRITE_GT_SECTORS) * SECTOR_SIZE);
    await writeFully(handle, gt, (rgtStart + window.gtIndex * WRITE_GT_SECTORS) * SECTOR_SIZE);
  }
  return bytesWritten;
}
