// Fixed-size little-endian records declared as tables (name, offset, size, type), checked at load
// so a field list that does not add up to the declared size fails at import time, not on disk.
// Encode and decode both come from the same table. u64 fields are read as bigint and narrowed to
// safe integers by the caller's checked helper.

import { crc32 } from 'node:zlib';
import { SbmError } from '../errors.js';

export type FieldType = 'u16' | 'u32' | 'u64';

export interface FieldSpec {
  readonly name: string;
  readonly offset: number;
  readonly type: FieldType;
}

const FIELD_SIZE: Record<FieldType, number> = { u16: 2, u32: 4, u64: 8 };

export interface BinaryTable<N extends string> {
  readonly name: string;
  readonly sizeBytes: number;
  encode(values: Record<N, number>, target?: Buffer): Buffer;
  decode(source: Uint8Array): Record<N, number>;
}

/** Declares a table; throws at load when fields overlap, leave gaps or miss the declared size. */
export function defineTable<N extends string>(name: string, sizeBytes: number, fields: ReadonlyArray<FieldSpec & { name: N }>): BinaryTable<N> {
  let expected = 0;
  for (const field of fields) {
    if (field.offset !== expected) throw new Error(`${name}.${field.name} is at ${field.offset}, expected ${expected}`);
    expected += FIELD_SIZE[field.type];
  }
  if (expected !== sizeBytes) throw new Error(`${name} fields cover ${expected} bytes, declared ${sizeBytes}`);
  return {
    name,
    sizeBytes,
    encode(values, target = Buffer.alloc(sizeBytes)) {
      for (const field of fields) {
        const value = values[field.name];
        if (field.type === 'u16') target.writeUInt16LE(value, field.offset);
        else if (field.type === 'u32') target.writeUInt32LE(value >>> 0, field.offset);
        else target.writeBigUInt64LE(BigInt(value), field.offset);
      }
      return target;
    },
    decode(source) {
      const view = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
      const out = {} as Record<N, number>;
      for (const field of fields) {
        if (field.type === 'u16') out[field.name] = view.readUInt16LE(field.offset);
        else if (field.type === 'u32') out[field.name] = view.readUInt32LE(field.offset);
        else out[field.name] = toSafeInteger(view.readBigUInt64LE(field.offset), `${name}.${field.name}`);
      }
      return out;
    },
  };
}

/** Narrows a 64-bit field; values past 2^53 cannot be sbm's own and mean damage. */
export function toSafeInteger(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new SbmError('SBM_CORRUPT', `${what} is ${value}, larger than 2^53`, { what });
  return Number(value);
}

/** CRC-32 of bytes [from, to) of `buffer`. */
export function checksum(buffer: Uint8Array, from: number, to: number): number {
  return crc32(buffer.subarray(from, to)) >>> 0;
}
