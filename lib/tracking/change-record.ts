// One record of .sbm/changes.log: "band B changed in generation G" (see change-log.ts).
//
//   CHANGE_RECORD (32 bytes, little-endian)
//   +0 magic u32 "SBMC" | +4 crc32 u32 of bytes 8..31 | +8 epochTag u32 | +12 kind u16
//   +14 reserved u16 | +16 generation u64 | +24 bandIndex u64
//
// The log is scanned on every open (20,000 records for 20,000 changed bands), so validation and
// the fields it needs are read in place with the layout's readers: no object per record.

import { defineLayout } from '../binary-layout.js';
import { crc32 } from '../checksums.js';
import { CHANGE_KIND_WRITE, CHANGE_RECORD_MAGIC, CHANGE_RECORD_SIZE } from './constants.js';

export const CHANGE_RECORD = defineLayout('CHANGE_RECORD', CHANGE_RECORD_SIZE, 'le', [
  { name: 'magic', offset: 0, type: 'u32', equals: CHANGE_RECORD_MAGIC },
  { name: 'crc', offset: 4, type: 'u32' },
  { name: 'epochTag', offset: 8, type: 'u32' },
  { name: 'kind', offset: 12, type: 'u16' },
  { name: 'reserved', offset: 14, type: 'u16' },
  { name: 'generation', offset: 16, type: 'u64n' },
  { name: 'bandIndex', offset: 24, type: 'u64n' },
] as const);

/** The checksum covers every field after it. */
const CRC_FROM = CHANGE_RECORD.offsetOf('epochTag');
const readMagic = CHANGE_RECORD.reader('magic');
const readCrc = CHANGE_RECORD.reader('crc');
const writeCrc = CHANGE_RECORD.writer('crc');

export function encodeChangeRecord(epochTag: number, generation: number, bandIndex: number, kind = CHANGE_KIND_WRITE): Buffer {
  const record = CHANGE_RECORD.encode({ magic: CHANGE_RECORD_MAGIC, crc: 0, epochTag, kind, reserved: 0, generation, bandIndex });
  writeCrc(record, 0, crc32(record, CRC_FROM, CHANGE_RECORD_SIZE));
  return record;
}

export const readRecordEpochTag = CHANGE_RECORD.reader('epochTag');
export const readRecordGeneration = CHANGE_RECORD.reader('generation');
export const readRecordBandIndex = CHANGE_RECORD.reader('bandIndex');

/** True when the record at `offset` has the magic and a matching checksum. */
export function isValidRecord(bytes: Buffer, offset: number): boolean {
  return (
    readMagic(bytes, offset) === CHANGE_RECORD_MAGIC &&
    readCrc(bytes, offset) === crc32(bytes, offset + CRC_FROM, offset + CHANGE_RECORD_SIZE)
  );
}
