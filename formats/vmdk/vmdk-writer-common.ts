// Pieces shared by the VMDK writers: the header both write, the embedded descriptor, and sizes.

import { SbmError } from '../../lib/errors.js';
import {
  DEFAULT_DESCRIPTOR_SIZE_SECTORS,
  DEFAULT_GRAIN_SIZE_SECTORS,
  DEFAULT_NUM_GTES_PER_GT,
  NO_PARENT_CID,
  SECTOR_SIZE,
  SPARSE_DOUBLE_END_LINE_CHAR1,
  SPARSE_DOUBLE_END_LINE_CHAR2,
  SPARSE_MAGICNUMBER,
  SPARSE_NON_END_LINE_CHAR,
  SPARSE_SINGLE_END_LINE_CHAR,
} from './constants.js';
import { formatDescriptor } from './descriptor.js';
import type { SparseExtentHeader } from './sparse-header.js';

export const WRITE_GRAIN_SECTORS = DEFAULT_GRAIN_SIZE_SECTORS;
export const WRITE_GRAIN_BYTES = WRITE_GRAIN_SECTORS * SECTOR_SIZE;
export const WRITE_GT_ENTRIES = DEFAULT_NUM_GTES_PER_GT;
export const WRITE_GT_SECTORS = (WRITE_GT_ENTRIES * 4) / SECTOR_SIZE;
export const WRITE_DESCRIPTOR_SECTORS = DEFAULT_DESCRIPTOR_SIZE_SECTORS;
/** Sparse extents hold u32 sector pointers: at most 2 TiB of file, so capacity is capped there. */
export const MAX_EXPORT_SECTORS = 0xffffffff;

export interface WriteGeometry {
  readonly capacitySectors: number;
  readonly gdEntries: number;
  readonly gdSectors: number;
}

export function writeGeometry(sizeBytes: number, path: string): WriteGeometry {
  const capacitySectors = Math.ceil(sizeBytes / SECTOR_SIZE);
  if (capacitySectors === 0 || capacitySectors > MAX_EXPORT_SECTORS) {
    throw new SbmError('SBM_BAD_SIZE', `${path}: a VMDK sparse extent holds 1 sector to 2 TiB; source is ${sizeBytes} bytes`, { path });
  }
  const gdEntries = Math.ceil(capacitySectors / (WRITE_GT_ENTRIES * WRITE_GRAIN_SECTORS));
  return { capacitySectors, gdEntries, gdSectors: Math.ceil((gdEntries * 4) / SECTOR_SIZE) };
}

export function baseHeader(capacitySectors: number): SparseExtentHeader {
  return {
    magicNumber: SPARSE_MAGICNUMBER,
    version: 1,
    flags: 0,
    capacity: BigInt(capacitySectors),
    grainSize: BigInt(WRITE_GRAIN_SECTORS),
    descriptorOffset: 1n,
    descriptorSize: BigInt(WRITE_DESCRIPTOR_SECTORS),
    numGTEsPerGT: WRITE_GT_ENTRIES,
    rgdOffset: 0n,
    gdOffset: 0n,
    overHead: 0n,
    uncleanShutdown: 0,
    singleEndLineChar: SPARSE_SINGLE_END_LINE_CHAR,
    nonEndLineChar: SPARSE_NON_END_LINE_CHAR,
    doubleEndLineChar1: SPARSE_DOUBLE_END_LINE_CHAR1,
    doubleEndLineChar2: SPARSE_DOUBLE_END_LINE_CHAR2,
    compressAlgorithm: 0,
  };
}

/** The embedded descriptor area (20 sectors, NUL-padded). */
export function descriptorArea(createType: string, fileName: string, capacitySectors: number): Buffer {
  const heads = 16;
  const sectorsPerTrack = 63;
  const text = formatDescriptor({
    version: 1,
    cid: crypto.getRandomValues(new Uint32Array(1))[0] || 1,
    parentCid: NO_PARENT_CID,
    createType,
    parentFileNameHint: undefined,
    extents: [{ access: 'RW', sectors: capacitySectors, type: 'SPARSE', fileName, offsetSectors: 0 }],
    ddb: {
      virtualHWVersion: '4',
      'geometry.cylinders': String(Math.min(16383, Math.ceil(capacitySectors / (heads * sectorsPerTrack)))),
      'geometry.heads': String(heads),
      'geometry.sectors': String(sectorsPerTrack),
      adapterType: 'ide',
    },
  });
  const area = Buffer.alloc(WRITE_DESCRIPTOR_SECTORS * SECTOR_SIZE);
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > area.length) throw new SbmError('SBM_INVALID_ARGUMENT', `file name too long for the embedded descriptor: ${fileName}`);
  bytes.copy(area);
  return area;
}
