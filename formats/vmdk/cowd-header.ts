// The ESXi vmfsSparse ("COWD", redo log) extent header, 2048 bytes at offset 0 (VDF5):
//
//   0 magic "COWD"  4 version 1  8 flags 3  12 numSectors  16 grainSize  20 gdOffset
//   24 numGDEntries  28 freeSector  32 union{root: cylinders, heads, sectors |
//   child: parentFileName[1024], parentGeneration}  1060 generation  1064 name[60]
//   1124 description[512]  1636 savedGeneration  1640 reserved[8]  1648 uncleanShutdown  1652 pad
//
// All u32. Grain tables hold 4096 u32 entries; GTE 0 = in the parent, 1 = zeroed grain.

import { defineLayout } from '../../lib/binary-layout.js';
import { SbmError } from '../../lib/errors.js';
import type { WarningSink } from '../../lib/warnings.js';
import { COWD_GTES_PER_GT, COWD_HEADER_SIZE, COWD_MAGICNUMBER, MAX_GD_ENTRIES, MAX_GRAIN_SIZE_SECTORS, SECTOR_SIZE } from './constants.js';
import type { SparseGeometry } from './sparse-header-check.js';
import { readExact, type ExtentHandle } from './vmdk-extent.js';

export const COWD_EXTENT_HEADER = defineLayout('VMDK COWD extent header', COWD_HEADER_SIZE, 'le', [
  { name: 'magicNumber', offset: 0, type: 'u32' },
  { name: 'version', offset: 4, type: 'u32' },
  { name: 'flags', offset: 8, type: 'u32' },
  { name: 'numSectors', offset: 12, type: 'u32' },
  { name: 'grainSize', offset: 16, type: 'u32' },
  { name: 'gdOffset', offset: 20, type: 'u32' },
  { name: 'numGDEntries', offset: 24, type: 'u32' },
  { name: 'freeSector', offset: 28, type: 'u32' },
  { name: 'parentOrGeometry', offset: 32, size: 1028, type: 'bytes' },
  { name: 'generation', offset: 1060, type: 'u32' },
  { name: 'name', offset: 1064, size: 60, type: 'bytes' },
  { name: 'description', offset: 1124, size: 512, type: 'bytes' },
  { name: 'savedGeneration', offset: 1636, type: 'u32' },
  { name: 'reserved', offset: 1640, size: 8, type: 'bytes' },
  { name: 'uncleanShutdown', offset: 1648, type: 'u32' },
  { name: 'pad', offset: 1652, size: 396, type: 'bytes' },
] as const);

export async function readCowdGeometry(
  handle: ExtentHandle,
  path: string,
  fileSize: number,
  onWarning: WarningSink,
): Promise<SparseGeometry> {
  const corrupt = (why: string): SbmError => new SbmError('SBM_CORRUPT', `${path}: ${why}`, { path });
  if (fileSize < COWD_HEADER_SIZE) throw corrupt(`vmfsSparse extent is truncated (${fileSize} bytes)`);
  const raw = Buffer.alloc(COWD_HEADER_SIZE);
  await readExact(handle, raw, 0, path);
  const header = COWD_EXTENT_HEADER.decode(raw, 0, path);
  if (header.magicNumber !== COWD_MAGICNUMBER) throw corrupt('not a vmfsSparse extent (expected magic "COWD")');
  if (header.version !== 1)
    throw new SbmError('SBM_UNSUPPORTED', `${path}: unsupported vmfsSparse version ${String(header.version)}`, { path });
  const capacitySectors = header.numSectors;
  const grainSizeSectors = header.grainSize;
  if (grainSizeSectors < 1 || grainSizeSectors > MAX_GRAIN_SIZE_SECTORS || (grainSizeSectors & (grainSizeSectors - 1)) !== 0) {
    throw corrupt(`grain size ${grainSizeSectors} sectors is not a power of two between 1 and ${MAX_GRAIN_SIZE_SECTORS}`);
  }
  const gdEntries = header.numGDEntries;
  const needed = Math.ceil(capacitySectors / (COWD_GTES_PER_GT * grainSizeSectors));
  if (gdEntries < needed) throw corrupt(`grain directory has ${gdEntries} entries, the capacity needs ${needed}`);
  if (gdEntries > MAX_GD_ENTRIES)
    throw new SbmError('SBM_UNSUPPORTED', `${path}: grain directory of ${gdEntries} entries is too large`, { path });
  const gdOffsetSectors = header.gdOffset;
  if (gdOffsetSectors * SECTOR_SIZE < COWD_HEADER_SIZE && gdEntries > 0)
    throw corrupt(`grain directory at sector ${gdOffsetSectors} overlaps the header`);
  if (gdOffsetSectors * SECTOR_SIZE + gdEntries * 4 > fileSize)
    throw corrupt('grain directory lies past end of file (absurd capacity or truncated file)');
  const uncleanShutdown = header.uncleanShutdown !== 0;
  if (uncleanShutdown) {
    onWarning({
      code: 'SBM_VMDK_UNCLEAN',
      message: `${path}: unclean-shutdown flag is set (the disk was not closed cleanly)`,
      data: { path },
    });
  }
  const headerSectors = COWD_HEADER_SIZE / SECTOR_SIZE;
  return {
    label: 'VMFSSPARSE',
    version: 1,
    flags: header.flags,
    capacitySectors,
    grainSizeSectors,
    gtEntries: COWD_GTES_PER_GT,
    gdEntries: needed,
    gdOffsetSectors,
    overheadSectors: headerSectors,
    // The header is the only fixed metadata; the sparse reader forbids tables over [0, 1) and the GD.
    descriptorOffsetSectors: 1,
    descriptorSizeSectors: headerSectors - 1,
    compressed: false,
    zeroedGrainsFlag: true,
    uncleanShutdown,
    gdSource: 'header',
  };
}
