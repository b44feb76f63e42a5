// Every VHDX on-disk structure, declared once (little-endian throughout; [MS-VHDX] 2.2).
//
//   0       64 KiB  file type identifier  "vhdxfile" + creator (UTF-16LE)
//   64 KiB   4 KiB  header 1              "head", CRC-32C, sequence number, GUIDs, log
//   128 KiB  4 KiB  header 2
//   192 KiB 64 KiB  region table 1        "regi" + entries: BAT and metadata regions
//   256 KiB 64 KiB  region table 2
//   1 MiB+          log, BAT region, metadata region, payload and sector bitmap blocks,
//                   each at a 1 MiB multiple
//
// Metadata region: a 64 KiB table ("metadata" + 32-byte entries) followed by the items, each
// at an offset from the region's start.

import { defineLayout } from '../../lib/binary-layout.js';
import { HEADER_SIZE, VHDX_FILE_SIGNATURE } from './constants.js';

export const FILE_IDENTIFIER = defineLayout('VHDX file identifier', 520, 'le', [
  { name: 'signature', offset: 0, type: 'bytes', size: 8, equals: VHDX_FILE_SIGNATURE },
  { name: 'creator', offset: 8, type: 'bytes', size: 512 },
] as const);

/** The signature is checked by the caller: a header that fails it is "not valid", not fatal. */
export const VHDX_HEADER = defineLayout('VHDX header', HEADER_SIZE, 'le', [
  { name: 'signature', offset: 0, type: 'bytes', size: 4 },
  { name: 'checksum', offset: 4, type: 'u32' },
  { name: 'sequenceNumber', offset: 8, type: 'u64' },
  { name: 'fileWriteGuid', offset: 16, type: 'bytes', size: 16 },
  { name: 'dataWriteGuid', offset: 32, type: 'bytes', size: 16 },
  { name: 'logGuid', offset: 48, type: 'bytes', size: 16 },
  { name: 'logVersion', offset: 64, type: 'u16' },
  { name: 'version', offset: 66, type: 'u16' },
  { name: 'logLength', offset: 68, type: 'u32' },
  { name: 'logOffset', offset: 72, type: 'u64' },
  { name: 'reserved', offset: 80, type: 'bytes', size: HEADER_SIZE - 80 },
] as const);

export const REGION_TABLE_HEADER = defineLayout('VHDX region table header', 16, 'le', [
  { name: 'signature', offset: 0, type: 'bytes', size: 4 },
  { name: 'checksum', offset: 4, type: 'u32' },
  { name: 'entryCount', offset: 8, type: 'u32' },
  { name: 'reserved', offset: 12, type: 'u32' },
] as const);

export const REGION_TABLE_ENTRY = defineLayout('VHDX region table entry', 32, 'le', [
  { name: 'guid', offset: 0, type: 'bytes', size: 16 },
  { name: 'fileOffset', offset: 16, type: 'u64' },
  { name: 'length', offset: 24, type: 'u32' },
  { name: 'required', offset: 28, type: 'u32' },
] as const);

export const METADATA_TABLE_HEADER = defineLayout('VHDX metadata table header', 32, 'le', [
  { name: 'signature', offset: 0, type: 'bytes', size: 8 },
  { name: 'reserved', offset: 8, type: 'u16' },
  { name: 'entryCount', offset: 10, type: 'u16' },
  { name: 'reserved2', offset: 12, type: 'bytes', size: 20 },
] as const);

export const METADATA_TABLE_ENTRY = defineLayout('VHDX metadata table entry', 32, 'le', [
  { name: 'itemId', offset: 0, type: 'bytes', size: 16 },
  { name: 'offset', offset: 16, type: 'u32' },
  { name: 'length', offset: 20, type: 'u32' },
  { name: 'flags', offset: 24, type: 'u32' },
  { name: 'reserved', offset: 28, type: 'u32' },
] as const);

export const FILE_PARAMETERS = defineLayout('VHDX file parameters', 8, 'le', [
  { name: 'blockSize', offset: 0, type: 'u32' },
  { name: 'flags', offset: 4, type: 'u32' },
] as const);

export const VIRTUAL_DISK_SIZE = defineLayout('VHDX virtual disk size', 8, 'le', [
  { name: 'virtualDiskSize', offset: 0, type: 'u64' },
] as const);

export const SECTOR_SIZE_ITEM = defineLayout('VHDX sector size', 4, 'le', [{ name: 'sectorSize', offset: 0, type: 'u32' }] as const);

export const PAGE83_DATA = defineLayout('VHDX page 83 data', 16, 'le', [
  { name: 'page83Data', offset: 0, type: 'bytes', size: 16 },
] as const);

export const PARENT_LOCATOR_HEADER = defineLayout('VHDX parent locator header', 20, 'le', [
  { name: 'locatorType', offset: 0, type: 'bytes', size: 16 },
  { name: 'reserved', offset: 16, type: 'u16' },
  { name: 'keyValueCount', offset: 18, type: 'u16' },
] as const);

export const PARENT_LOCATOR_ENTRY = defineLayout('VHDX parent locator entry', 12, 'le', [
  { name: 'keyOffset', offset: 0, type: 'u32' },
  { name: 'valueOffset', offset: 4, type: 'u32' },
  { name: 'keyLength', offset: 8, type: 'u16' },
  { name: 'valueLength', offset: 10, type: 'u16' },
] as const);

/**
 * A BAT entry (u64: bits 0-2 state, 3-19 reserved, 20-63 FileOffsetMB) read as two words, so
 * the per-block hot path needs no bigint: state and reserved bits sit in `low`, the offset is
 * `(low >>> 20) + high * 4096` MiB.
 */
export const BAT_ENTRY = defineLayout('VHDX BAT entry', 8, 'le', [
  { name: 'low', offset: 0, type: 'u32' },
  { name: 'high', offset: 4, type: 'u32' },
] as const);

/** Log entry header ([MS-VHDX] 2.3.1.1): the first 64 bytes of an entry's first sector. */
export const LOG_ENTRY_HEADER = defineLayout('VHDX log entry header', 64, 'le', [
  { name: 'signature', offset: 0, type: 'bytes', size: 4 },
  { name: 'checksum', offset: 4, type: 'u32' },
  { name: 'entryLength', offset: 8, type: 'u32' },
  { name: 'tail', offset: 12, type: 'u32' },
  { name: 'sequenceNumber', offset: 16, type: 'u64' },
  { name: 'descriptorCount', offset: 24, type: 'u32' },
  { name: 'reserved', offset: 28, type: 'u32' },
  { name: 'logGuid', offset: 32, type: 'bytes', size: 16 },
  { name: 'flushedFileOffset', offset: 48, type: 'u64' },
  { name: 'lastFileOffset', offset: 56, type: 'u64' },
] as const);

/** A `zero` descriptor: ZeroLength bytes at FileOffset read as zeros. */
export const LOG_ZERO_DESCRIPTOR = defineLayout('VHDX log zero descriptor', 32, 'le', [
  { name: 'signature', offset: 0, type: 'bytes', size: 4 },
  { name: 'reserved', offset: 4, type: 'u32' },
  { name: 'zeroLength', offset: 8, type: 'u64' },
  { name: 'fileOffset', offset: 16, type: 'u64' },
  { name: 'sequenceNumber', offset: 24, type: 'u64' },
] as const);

/** A `desc` descriptor: one 4 KiB sector at FileOffset, its first 8 and last 4 bytes kept here. */
export const LOG_DATA_DESCRIPTOR = defineLayout('VHDX log data descriptor', 32, 'le', [
  { name: 'signature', offset: 0, type: 'bytes', size: 4 },
  { name: 'trailingBytes', offset: 4, type: 'bytes', size: 4 },
  { name: 'leadingBytes', offset: 8, type: 'bytes', size: 8 },
  { name: 'fileOffset', offset: 16, type: 'u64' },
  { name: 'sequenceNumber', offset: 24, type: 'u64' },
] as const);

/** A data sector: the middle 4084 bytes of a logged sector, framed by the entry's sequence number. */
export const LOG_DATA_SECTOR = defineLayout('VHDX log data sector', 4096, 'le', [
  { name: 'signature', offset: 0, type: 'bytes', size: 4 },
  { name: 'sequenceHigh', offset: 4, type: 'u32' },
  { name: 'data', offset: 8, type: 'bytes', size: 4084 },
  { name: 'sequenceLow', offset: 4092, type: 'u32' },
] as const);
