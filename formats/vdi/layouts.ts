// VDI on-disk structures (little-endian), declared once.
//
//   [ pre-header 0x48: text, signature, version ][ header v1.1 ][ block map @offBlocks ][ blocks @offData ]
//   block p (map entry) lives at offData + p * (cbBlock + cbBlockExtra) + cbBlockExtra

import { defineLayout } from '../../lib/binary-layout.js';
import { VDI_HEADER_V1_SIZE, VDI_IMAGE_SIGNATURE, VDI_PRE_HEADER_SIZE } from './constants.js';

export const VDI_PRE_HEADER = defineLayout('VDI pre-header', VDI_PRE_HEADER_SIZE, 'le', [
  { name: 'fileInfo', offset: 0, type: 'bytes', size: 64 },
  { name: 'signature', offset: 64, type: 'u32', equals: VDI_IMAGE_SIGNATURE },
  { name: 'version', offset: 68, type: 'u32' },
] as const);

/** The v1.1 header, from the end of the pre-header (absolute offset 0x48). */
export const VDI_HEADER_V1 = defineLayout('VDI header', VDI_HEADER_V1_SIZE, 'le', [
  { name: 'cbHeader', offset: 0, type: 'u32' },
  { name: 'imageType', offset: 4, type: 'u32' },
  { name: 'imageFlags', offset: 8, type: 'u32' },
  { name: 'comment', offset: 12, type: 'bytes', size: 256 },
  { name: 'offBlocks', offset: 268, type: 'u32' },
  { name: 'offData', offset: 272, type: 'u32' },
  { name: 'cylinders', offset: 276, type: 'u32' },
  { name: 'heads', offset: 280, type: 'u32' },
  { name: 'sectors', offset: 284, type: 'u32' },
  { name: 'cbSector', offset: 288, type: 'u32' },
  { name: 'dummy', offset: 292, type: 'u32' },
  { name: 'cbDisk', offset: 296, type: 'u64' },
  { name: 'cbBlock', offset: 304, type: 'u32' },
  { name: 'cbBlockExtra', offset: 308, type: 'u32' },
  { name: 'cBlocks', offset: 312, type: 'u32' },
  { name: 'cBlocksAllocated', offset: 316, type: 'u32' },
  { name: 'uuidCreate', offset: 320, type: 'bytes', size: 16 },
  { name: 'uuidModify', offset: 336, type: 'bytes', size: 16 },
  { name: 'uuidLinkage', offset: 352, type: 'bytes', size: 16 },
  { name: 'uuidParentModify', offset: 368, type: 'bytes', size: 16 },
] as const);

/**
 * The "1.1+" tail VirtualBox writes after the v1.1 header (cbHeader 400): the logical CHS
 * geometry, present only when cbHeader >= 400. sbm writes it zeroed with 512-byte sectors.
 */
export const VDI_HEADER_LCHS = defineLayout('VDI header LCHS geometry', 16, 'le', [
  { name: 'cylinders', offset: 0, type: 'u32' },
  { name: 'heads', offset: 4, type: 'u32' },
  { name: 'sectors', offset: 8, type: 'u32' },
  { name: 'cbSector', offset: 12, type: 'u32' },
] as const);

/** Both headers, as read from the start of a file. */
export const VDI_HEADERS_SIZE = VDI_PRE_HEADER_SIZE + VDI_HEADER_V1_SIZE;

/** A VDI UUID (VirtualBox's RTUUID: first three fields little-endian) in its text form. */
export function vdiUuidText(bytes: Buffer): string {
  const swapped = (from: number, to: number): string => Buffer.from(bytes.subarray(from, to)).reverse().toString('hex');
  return [swapped(0, 4), swapped(4, 6), swapped(6, 8), bytes.toString('hex', 8, 10), bytes.toString('hex', 10, 16)].join('-');
}
