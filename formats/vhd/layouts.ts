// VHD on-disk structures (big-endian), declared once.
//
//   fixed:        [ data ........................ ][ footer 512 ]
//   dynamic/diff: [ footer copy 512 ][ dynamic header 1024 ][ BAT ][ bitmap|block ]...[ footer 512 ]

import { defineLayout } from '../../lib/binary-layout.js';
import { VHD_DYNAMIC_COOKIE, VHD_DYNAMIC_HEADER_SIZE, VHD_FOOTER_COOKIE, VHD_FOOTER_SIZE } from './constants.js';

export const VHD_FOOTER = defineLayout('VHD footer', VHD_FOOTER_SIZE, 'be', [
  { name: 'cookie', offset: 0, type: 'bytes', size: 8, equals: VHD_FOOTER_COOKIE },
  { name: 'features', offset: 8, type: 'u32' },
  { name: 'formatVersion', offset: 12, type: 'u32' },
  { name: 'dataOffset', offset: 16, type: 'u64' },
  { name: 'timestamp', offset: 24, type: 'u32' },
  { name: 'creatorApplication', offset: 28, type: 'bytes', size: 4 },
  { name: 'creatorVersion', offset: 32, type: 'u32' },
  { name: 'creatorHostOs', offset: 36, type: 'u32' },
  { name: 'originalSize', offset: 40, type: 'u64' },
  { name: 'currentSize', offset: 48, type: 'u64' },
  { name: 'cylinders', offset: 56, type: 'u16' },
  { name: 'heads', offset: 58, type: 'u8' },
  { name: 'sectorsPerTrack', offset: 59, type: 'u8' },
  { name: 'diskType', offset: 60, type: 'u32' },
  { name: 'checksum', offset: 64, type: 'u32' },
  { name: 'uniqueId', offset: 68, type: 'bytes', size: 16 },
  { name: 'savedState', offset: 84, type: 'u8' },
  { name: 'reserved', offset: 85, type: 'bytes', size: 427 },
] as const);

export const VHD_DYNAMIC_HEADER = defineLayout('VHD dynamic disk header', VHD_DYNAMIC_HEADER_SIZE, 'be', [
  { name: 'cookie', offset: 0, type: 'bytes', size: 8, equals: VHD_DYNAMIC_COOKIE },
  { name: 'dataOffset', offset: 8, type: 'u64' },
  { name: 'tableOffset', offset: 16, type: 'u64' },
  { name: 'headerVersion', offset: 24, type: 'u32' },
  { name: 'maxTableEntries', offset: 28, type: 'u32' },
  { name: 'blockSize', offset: 32, type: 'u32' },
  { name: 'checksum', offset: 36, type: 'u32' },
  { name: 'parentUniqueId', offset: 40, type: 'bytes', size: 16 },
  { name: 'parentTimestamp', offset: 56, type: 'u32' },
  { name: 'reserved1', offset: 60, type: 'u32' },
  { name: 'parentUnicodeName', offset: 64, type: 'bytes', size: 512 },
  { name: 'parentLocators', offset: 576, type: 'bytes', size: 192 },
  { name: 'reserved2', offset: 768, type: 'bytes', size: 256 },
] as const);

export const VHD_PARENT_LOCATOR = defineLayout('VHD parent locator entry', 24, 'be', [
  { name: 'platformCode', offset: 0, type: 'u32' },
  { name: 'platformDataSpace', offset: 4, type: 'u32' },
  { name: 'platformDataLength', offset: 8, type: 'u32' },
  { name: 'reserved', offset: 12, type: 'u32' },
  { name: 'platformDataOffset', offset: 16, type: 'u64' },
] as const);

/**
 * The VHD checksum of a structure: the one's complement of the byte sum, with the checksum field
 * (4 bytes at `checksumAt`) counted as zero.
 */
export function vhdChecksum(structure: Uint8Array, checksumAt: number): number {
  let sum = 0;
  for (let index = 0; index < structure.length; index++) {
    if (index >= checksumAt && index < checksumAt + 4) continue;
    sum += structure[index] as number;
  }
  return ~sum >>> 0;
}
