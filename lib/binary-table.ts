// Declared binary structures: a table of (name, offset, type) fields, checked against its size
// once at load (fields must be contiguous and cover the declared size), with encode and decode
// both driven by the same table so a layout lives in one place. One table, one byte order:
// NBD frames are big-endian, sbm's own tracking files little-endian. u64 fields decode as bigint;
// callers narrow them with a checked helper.

import { SbmError } from './errors.js';

export type FieldType = 'u16' | 'u32' | 'u64';
export type ByteOrder = 'be' | 'le';

export interface FieldSpec {
  readonly name: string;
  readonly offset: number;
  readonly type: FieldType;
}

type FieldValue<T extends FieldType> = T extends 'u64' ? bigint : number;

export type TableValues<F extends readonly FieldSpec[]> = { [K in F[number] as K['name']]: FieldValue<K['type']> };

const TYPE_BYTES: Record<FieldType, number> = { u16: 2, u32: 4, u64: 8 };

export class BinaryTable<F extends readonly FieldSpec[]> {
  constructor(
    readonly name: string,
    readonly sizeBytes: number,
    readonly byteOrder: ByteOrder,
    readonly fields: F,
  ) {
    let expected = 0;
    for (const field of fields) {
      if (field.offset !== expected) throw new SbmError('SBM_INTERNAL', `${name}.${field.name} declared at ${field.offset}, expected ${expected}`);
      expected += TYPE_BYTES[field.type];
    }
    if (expected !== sizeBytes) throw new SbmError('SBM_INTERNAL', `${name} fields cover ${expected} bytes, declared ${sizeBytes}`);
  }

  decode(source: Uint8Array, at = 0): TableValues<F> {
    const view = Buffer.isBuffer(source) ? source : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    const big = this.byteOrder === 'be';
    const out: Record<string, number | bigint> = {};
    for (const field of this.fields) {
      const position = at + field.offset;
      if (field.type === 'u16') out[field.name] = big ? view.readUInt16BE(position) : view.readUInt16LE(position);
      else if (field.type === 'u32') out[field.name] = big ? view.readUInt32BE(position) : view.readUInt32LE(position);
      else out[field.name] = big ? view.readBigUInt64BE(position) : view.readBigUInt64LE(position);
    }
    return out as TableValues<F>;
  }

  /** Writes the fields into `target` at `at` (default: a new zeroed buffer of the table's size). */
  encode(values: TableValues<F>, target: Buffer = Buffer.alloc(this.sizeBytes), at = 0): Buffer {
    const record = values as Record<string, number | bigint>;
    const big = this.byteOrder === 'be';
    for (const field of this.fields) {
      const value = record[field.name] ?? 0;
      const position = at + field.offset;
      if (field.type === 'u64') {
        if (big) target.writeBigUInt64BE(BigInt(value), position);
        else target.writeBigUInt64LE(BigInt(value), position);
      } else if (field.type === 'u32') {
        if (big) target.writeUInt32BE(Number(value) >>> 0, position);
        else target.writeUInt32LE(Number(value) >>> 0, position);
      } else if (big) target.writeUInt16BE(Number(value), position);
      else target.writeUInt16LE(Number(value), position);
    }
    return target;
  }
}

/** Narrows a 64-bit field to a safe integer; larger values mean damage. */
export function toSafeInteger(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new SbmError('SBM_CORRUPT', `${what} is ${value}, larger than 2^53`, { what });
  return Number(value);
}
