// sbm's own tracking records (little-endian, fixed size) as declared tables on lib/binary-table.ts,
// with every field as a plain number: u64 fields are narrowed to safe integers on decode, since a
// larger value in sbm's own files can only mean damage.

import { crc32 } from 'node:zlib';
import { BinaryTable, type FieldType, toSafeInteger } from '../binary-table.js';

export { toSafeInteger };

export interface FieldSpec {
  readonly name: string;
  readonly offset: number;
  readonly type: FieldType;
}

export interface NumberTable<N extends string> {
  readonly name: string;
  readonly sizeBytes: number;
  encode(values: Record<N, number>, target?: Buffer): Buffer;
  decode(source: Uint8Array): Record<N, number>;
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
  };
}

/** CRC-32 of bytes [from, to) of `buffer`. */
export function checksum(buffer: Uint8Array, from: number, to: number): number {
  return crc32(buffer.subarray(from, to)) >>> 0;
}
