// sbm's own tracking records (little-endian, fixed size) as declared tables on lib/binary-table.ts,
// with every field as a plain number: u64 fields are narrowed to safe integers on decode, since a
// larger value in sbm's own files can only mean damage.
//
// Hot loops (scanning 20,000 change records, checking a stat-cache slot per band) use the table's
// per-field readers and `checksum` instead of `decode`: they read one field in place, allocate
// nothing, and take their offsets from the same declared table.

import { BinaryTable, type FieldType, toSafeInteger } from '../binary-table.js';
import { SbmError } from '../errors.js';

export { toSafeInteger };

export interface FieldSpec {
  readonly name: string;
  readonly offset: number;
  readonly type: FieldType;
}

/** Reads one field of a record starting at `at`, without allocating. */
export type FieldReader = (source: Buffer, at: number) => number;

export interface NumberTable<N extends string> {
  readonly name: string;
  readonly sizeBytes: number;
  encode(values: Record<N, number>, target?: Buffer): Buffer;
  decode(source: Uint8Array): Record<N, number>;
  /** Allocation-free reader of one field; u64 fields throw SBM_CORRUPT past 2^53 like decode. */
  reader(field: N): FieldReader;
}

/** Declares a little-endian table; throws at load when fields overlap, leave gaps or miss the size. */
export function defineTable<N extends string>(name: string, sizeBytes: number, fields: ReadonlyArray<FieldSpec & { name: N }>): NumberTable<N> {
  const table = new BinaryTable(name, sizeBytes, 'le', fields);
  return {
    name,
    sizeBytes,
    encode: (values, target) => table.encode(values as never, target),
    decode(source) {
      const raw = table.decode(source) as Record<string, number | bigint>;
      const out = {} as Record<N, number>;
      for (const field of fields) {
        const value = raw[field.name] ?? 0;
        out[field.name] = typeof value === 'bigint' ? toSafeInteger(value, `${name}.${field.name}`) : value;
      }
      return out;
    },
    reader(fieldName) {
      const field = fields.find((candidate) => candidate.name === fieldName);
      if (field === undefined) throw new SbmError('SBM_INTERNAL', `${name} has no field ${fieldName}`);
      const { offset } = field;
      if (field.type === 'u16') return (source, at) => source.readUInt16LE(at + offset);
      if (field.type === 'u32') return (source, at) => source.readUInt32LE(at + offset);
      const what = `${name}.${fieldName}`;
      return (source, at) => readSafeU64LE(source, at + offset, what);
    },
  };
}

/** A little-endian u64 as a safe integer; larger values mean damage (SBM_CORRUPT). */
export function readSafeU64LE(source: Buffer, position: number, what: string): number {
  const low = source.readUInt32LE(position);
  const high = source.readUInt32LE(position + 4);
  if (high > 0x1fffff) throw new SbmError('SBM_CORRUPT', `${what} is ${source.readBigUInt64LE(position)}, larger than 2^53`, { what });
  return high * 0x1_0000_0000 + low;
}

// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), the same function as zlib's crc32.
// Computed here byte by byte: the records it guards are 24-60 bytes, where a call into zlib costs
// ~1 us of argument checking and a subarray, and this loop ~60 ns.
const CRC_POLYNOMIAL = 0xedb88320;
const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let value = byte;
    for (let bit = 0; bit < 8; bit++) value = value & 1 ? (value >>> 1) ^ CRC_POLYNOMIAL : value >>> 1;
    table[byte] = value;
  }
  return table;
})();

/** CRC-32 of bytes [from, to) of `buffer`. */
export function checksum(buffer: Uint8Array, from: number, to: number): number {
  let crc = -1;
  for (let index = from; index < to; index++) crc = (crc >>> 8) ^ (CRC_TABLE[(crc ^ (buffer[index] as number)) & 0xff] as number);
  return (crc ^ -1) >>> 0;
}
