// One record of .sbm/changes.log: "band B changed in generation G" (see change-log.ts).
//
//   CHANGE_RECORD (32 bytes, little-endian)
//   +0 magic u32 "SBMC" | +4 crc32 u32 of bytes 8..31 | +8 epochTag u32 | +12 kind u16
//   +14 reserved u16 | +16 generation u64 | +24 bandIndex u64

import { checksum, defineTable } from './binary-table.js';
import { CHANGE_KIND_WRITE, CHANGE_RECORD_MAGIC, CHANGE_RECORD_SIZE } from './constants.js';

export const CHANGE_RECORD = defineTable('CHANGE_RECORD', CHANGE_RECORD_SIZE, [
  { name: 'magic', offset: 0, type: 'u32' },
  { name: 'crc', offset: 4, type: 'u32' },
  { name: 'epochTag', offset: 8, type: 'u32' },
  { name: 'kind', offset: 12, type: 'u16' },
  { name: 'reserved', offset: 14, type: 'u16' },
  { name: 'generation', offset: 16, type: 'u64' },
  { name: 'bandIndex', offset: 24, type: 'u64' },
] as const);

export function encodeChangeRecord(epochTag: number, generation: number, bandIndex: number, kind = CHANGE_KIND_WRITE): Buffer {
  const record = CHANGE_RECORD.encode({ magic: CHANGE_RECORD_MAGIC, crc: 0, epochTag, kind, reserved: 0, generation, bandIndex });
  record.writeUInt32LE(checksum(record, 8, CHANGE_RECORD_SIZE), 4);
  return record;
}

export const readRecordEpochTag = CHANGE_RECORD.reader('epochTag');
export const readRecordGeneration = CHANGE_RECORD.reader('generation');
export const readRecordBandIndex = CHANGE_RECORD.reader('bandIndex');

/** True when the record at `offset` has the magic and a matching checksum. */
export function isValidRecord(bytes: Buffer, offset: number): boolean {
  return bytes.readUInt32LE(offset) === CHANGE_RECORD_MAGIC && bytes.readUInt32LE(offset + 4) === checksum(bytes, offset + 8, offset + CHANGE_RECORD_SIZE);
}
