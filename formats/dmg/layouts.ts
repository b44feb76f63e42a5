// UDIF (.dmg) on-disk structures, all big-endian, declared once.
//
//   [ data fork: chunks ][ XML plist (resource-fork dict with `blkx` tables) ][ koly trailer, last 512 bytes ]
//
// Each `blkx` entry's Data is a `mish` table: a 204-byte header then 40-byte chunk records, each
// mapping a run of 512-byte sectors of the disk to a stretch of the data fork (raw or compressed).

import { defineLayout } from '../../lib/binary-layout.js';

export const DMG_SECTOR_SIZE = 512;

export const KOLY = defineLayout('UDIF koly trailer', 512, 'be', [
  { name: 'signature', offset: 0, type: 'bytes', size: 4, equals: 'koly' },
  { name: 'version', offset: 4, type: 'u32' },
  { name: 'headerSize', offset: 8, type: 'u32' },
  { name: 'flags', offset: 12, type: 'u32' },
  { name: 'runningDataForkOffset', offset: 16, type: 'u64' },
  { name: 'dataForkOffset', offset: 24, type: 'u64n' },
  { name: 'dataForkLength', offset: 32, type: 'u64n' },
  { name: 'rsrcForkOffset', offset: 40, type: 'u64n' },
  { name: 'rsrcForkLength', offset: 48, type: 'u64n' },
  { name: 'segmentNumber', offset: 56, type: 'u32' },
  { name: 'segmentCount', offset: 60, type: 'u32' },
  { name: 'segmentId', offset: 64, type: 'bytes', size: 16 },
  { name: 'dataChecksumType', offset: 80, type: 'u32' },
  { name: 'dataChecksumBits', offset: 84, type: 'u32' },
  { name: 'dataChecksum', offset: 88, type: 'bytes', size: 128 },
  { name: 'xmlOffset', offset: 216, type: 'u64n' },
  { name: 'xmlLength', offset: 224, type: 'u64n' },
  { name: 'reserved1', offset: 232, type: 'bytes', size: 120 },
  { name: 'checksumType', offset: 352, type: 'u32' },
  { name: 'checksumBits', offset: 356, type: 'u32' },
  { name: 'checksum', offset: 360, type: 'bytes', size: 128 },
  { name: 'imageVariant', offset: 488, type: 'u32' },
  { name: 'sectorCount', offset: 492, type: 'u64n' },
  { name: 'reserved2', offset: 500, type: 'bytes', size: 12 },
] as const);

export const MISH_HEADER = defineLayout('UDIF mish table', 204, 'be', [
  { name: 'signature', offset: 0, type: 'bytes', size: 4, equals: 'mish' },
  { name: 'version', offset: 4, type: 'u32' },
  { name: 'firstSector', offset: 8, type: 'u64n' },
  { name: 'sectorCount', offset: 16, type: 'u64n' },
  { name: 'dataOffset', offset: 24, type: 'u64n' },
  { name: 'buffersNeeded', offset: 32, type: 'u32' },
  { name: 'blockDescriptors', offset: 36, type: 'u32' },
  { name: 'reserved', offset: 40, type: 'bytes', size: 24 },
  { name: 'checksumType', offset: 64, type: 'u32' },
  { name: 'checksumBits', offset: 68, type: 'u32' },
  { name: 'checksum', offset: 72, type: 'bytes', size: 128 },
  { name: 'chunkCount', offset: 200, type: 'u32' },
] as const);

export const MISH_CHUNK = defineLayout('UDIF mish chunk', 40, 'be', [
  { name: 'type', offset: 0, type: 'u32' },
  { name: 'comment', offset: 4, type: 'u32' },
  { name: 'sector', offset: 8, type: 'u64n' },
  { name: 'sectorCount', offset: 16, type: 'u64n' },
  { name: 'compressedOffset', offset: 24, type: 'u64n' },
  { name: 'compressedLength', offset: 32, type: 'u64n' },
] as const);

/** Chunk types of a mish table. */
export const CHUNK = {
  zero: 0x00000000,
  raw: 0x00000001,
  ignore: 0x00000002,
  adc: 0x80000004,
  zlib: 0x80000005,
  bzip2: 0x80000006,
  lzfse: 0x80000007,
  lzma: 0x80000008,
  comment: 0x7ffffffe,
  terminator: 0xffffffff,
} as const;

export const CHUNK_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(CHUNK).map(([name, type]) => [type, name]));

/** The checksum type UDIF uses for CRC-32 (its value is the first 32 bits of the checksum field). */
export const CHECKSUM_CRC32 = 2;
