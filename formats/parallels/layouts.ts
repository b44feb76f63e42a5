// The expanding image (.hds) header, little-endian, 64 bytes; the BAT (u32 per cluster) follows.
//
//   0 magic[16]  16 version  20 heads  24 cylinders  28 tracks (cluster size in sectors)
//   32 bat_entries  36 nb_sectors (u64)  44 inuse  48 data_off (sectors)  52 flags
//   56 ext_off (u64, sectors: the Format Extension cluster, dirty bitmaps; ignored for reading)

import { defineLayout } from '../../lib/binary-layout.js';
import { HEADER_SIZE } from './constants.js';

export const PARALLELS_HEADER = defineLayout('Parallels image header', HEADER_SIZE, 'le', [
  { name: 'magic', offset: 0, type: 'bytes', size: 16 },
  { name: 'version', offset: 16, type: 'u32' },
  { name: 'heads', offset: 20, type: 'u32' },
  { name: 'cylinders', offset: 24, type: 'u32' },
  { name: 'tracks', offset: 28, type: 'u32' },
  { name: 'batEntries', offset: 32, type: 'u32' },
  { name: 'nbSectors', offset: 36, type: 'u64' },
  { name: 'inUse', offset: 44, type: 'u32' },
  { name: 'dataOffsetSectors', offset: 48, type: 'u32' },
  { name: 'flags', offset: 52, type: 'u32' },
  { name: 'extensionOffsetSectors', offset: 56, type: 'u64' },
] as const);
