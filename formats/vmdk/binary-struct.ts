// Declared little-endian structures: a table of (name, offset, size, type) checked once at load
// (fields inside the structure, no overlaps, total size as declared). Decode and encode both come
// from the same table, so a reader and a writer cannot disagree about a layout.

import { SbmError } from '../../lib/errors.js';

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'bytes';

export interface FieldSpec<N extends string = string> {
  readonly name: N;
  readonly offset: number;
  readonly size: number;
  readonly type: FieldType;
}

export interface StructSpec<N extends string> {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly FieldSpec<N>[];
}

/** Decoded values: u8/u16/u32 as number, u64 as bigint, bytes as Buffer. */
export type StructValues<N extends string> = Record<N, number | bigint | Buffer>;

const TYPE_SIZES: Record<Exclude<FieldType, 'bytes'>, number> = { u8: 1, u16: 2, u32: 4, u64: 8 };

/** Declares a structure; throws (a bug, not bad input) if the table is inconsistent. */
export function defineStruct<N extends string>(name: string, size: number, fields: readonly FieldSpec<N>[]): StructSpec<N> {
  let expected = 0;
  for (const field of fields) {
    if (field.offset !== expected) throw new Error(`struct ${name}: field ${field.name} at ${field.offset}, expected ${expected}`);
    if (field.type !== 'bytes' && TYPE_SIZES[field.type] !== field.size) throw new Error(`struct ${name}: field ${field.name} has a wrong size`);
    expected += field.size;
  }
  if (expected !== size) throw new Error(`struct ${name}: fields cover ${expected} bytes, declared ${size}`);
  return { name, size, fields };
}

export function decodeStruct<N extends string>(spec: StructSpec<N>, data: Uint8Array, at = 0): StructValues<N> {
  if (data.length - at < spec.size) {
    throw new SbmError('SBM_CORRUPT', `${spec.name} is truncated (${data.length - at} of ${spec.size} bytes)`);
  }
  const buf = Buffer.from(data.buffer, data.byteOffset + at, spec.size);
  const out = {} as StructValues<N>;
  for (const field of spec.fields) {
    switch (field.type) {
      case 'u8':
        out[field.name] = buf.readUInt8(field.offset);
        break;
      case 'u16':
        out[field.name] = buf.readUInt16LE(field.offset);
        break;
      case 'u32':
        out[field.name] = buf.readUInt32LE(field.offset);
        break;
      case 'u64':
        out[field.name] = buf.readBigUInt64LE(field.offset);
        break;
      case 'bytes':
        out[field.name] = Buffer.from(buf.subarray(field.offset, field.offset + field.size));
        break;
    }
  }
  return out;
}

export function encodeStruct<N extends string>(spec: StructSpec<N>, values: Partial<StructValues<N>>): Buffer {
  const buf = Buffer.alloc(spec.size);
  for (const field of spec.fields) {
    const value = values[field.name];
    if (value === undefined) continue;
    switch (field.type) {
      case 'u8':
        buf.writeUInt8(Number(value), field.offset);
        break;
      case 'u16':
        buf.writeUInt16LE(Number(value), field.offset);
        break;
      case 'u32':
        buf.writeUInt32LE(Number(value), field.offset);
        break;
      case 'u64':
        buf.writeBigUInt64LE(BigInt(value as number | bigint), field.offset);
        break;
      case 'bytes':
        (value as Buffer).copy(buf, field.offset, 0, Math.min(field.size, (value as Buffer).length));
        break;
    }
  }
  return buf;
}

/** Narrows a u64 field to a safe integer, or throws SBM_CORRUPT naming the field and file. */
export function toSafeNumber(value: bigint, what: string, path: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SbmError('SBM_CORRUPT', `${path}: ${what} ${value} is out of range`, { path, field: what });
  }
  return Number(value);
}
