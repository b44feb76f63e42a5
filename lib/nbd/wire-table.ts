// Declared wire structures: each NBD frame header is a table of (name, offset, type) checked
// against its size once at load, and both encode and decode read the same table, so the layout
// lives in one place. All integers are big-endian, as NBD requires.

import { SbmError } from '../errors.js';

export type WireType = 'u16' | 'u32' | 'u64';

export interface WireField {
  readonly name: string;
  readonly offset: number;
  readonly type: WireType;
}

type FieldValue<T extends WireType> = T extends 'u64' ? bigint : number;

export type WireValues<F extends readonly WireField[]> = { [K in F[number] as K['name']]: FieldValue<K['type']> };

const TYPE_BYTES: Record<WireType, number> = { u16: 2, u32: 4, u64: 8 };

export class WireTable<F extends readonly WireField[]> {
  constructor(
    readonly name: string,
    readonly sizeBytes: number,
    readonly fields: F,
  ) {
    let expected = 0;
    for (const field of fields) {
      if (field.offset !== expected) throw new SbmError('SBM_INTERNAL', `${name}.${field.name} declared at ${field.offset}, expected ${expected}`);
      expected += TYPE_BYTES[field.type];
    }
    if (expected !== sizeBytes) throw new SbmError('SBM_INTERNAL', `${name} fields cover ${expected} bytes, declared ${sizeBytes}`);
  }

  decode(source: Buffer, at = 0): WireValues<F> {
    const out: Record<string, number | bigint> = {};
    for (const field of this.fields) {
      const position = at + field.offset;
      if (field.type === 'u16') out[field.name] = source.readUInt16BE(position);
      else if (field.type === 'u32') out[field.name] = source.readUInt32BE(position);
      else out[field.name] = source.readBigUInt64BE(position);
    }
    return out as WireValues<F>;
  }

  /** Writes the fields into `target` at `at` (default: a new buffer of exactly the table's size). */
  encode(values: WireValues<F>, target: Buffer = Buffer.allocUnsafe(this.sizeBytes), at = 0): Buffer {
    const record = values as Record<string, number | bigint>;
    for (const field of this.fields) {
      const value = record[field.name];
      const position = at + field.offset;
      if (field.type === 'u64') target.writeBigUInt64BE(BigInt(value ?? 0), position);
      else if (field.type === 'u32') target.writeUInt32BE(Number(value ?? 0), position);
      else target.writeUInt16BE(Number(value ?? 0), position);
    }
    return target;
  }
}

function table<const F extends readonly WireField[]>(name: string, sizeBytes: number, fields: F): WireTable<F> {
  return new WireTable(name, sizeBytes, fields);
}

/** S->C greeting of the fixed newstyle handshake. */
export const GREETING = table('greeting', 18, [
  { name: 'nbdMagic', offset: 0, type: 'u64' },
  { name: 'optMagic', offset: 8, type: 'u64' },
  { name: 'handshakeFlags', offset: 16, type: 'u16' },
] as const);

/** C->S client flags, right after the greeting. */
export const CLIENT_FLAGS = table('client flags', 4, [{ name: 'clientFlags', offset: 0, type: 'u32' }] as const);

/** C->S option header, followed by `length` bytes of option data. */
export const OPTION_HEADER = table('option header', 16, [
  { name: 'magic', offset: 0, type: 'u64' },
  { name: 'option', offset: 8, type: 'u32' },
  { name: 'length', offset: 12, type: 'u32' },
] as const);

/** S->C option reply header, followed by `length` bytes of reply data. */
export const OPTION_REPLY_HEADER = table('option reply header', 20, [
  { name: 'magic', offset: 0, type: 'u64' },
  { name: 'option', offset: 8, type: 'u32' },
  { name: 'replyType', offset: 12, type: 'u32' },
  { name: 'length', offset: 16, type: 'u32' },
] as const);

/** NBD_INFO_EXPORT payload (also the body of a successful EXPORT_NAME, before the zero pad). */
export const INFO_EXPORT = table('NBD_INFO_EXPORT', 12, [
  { name: 'infoType', offset: 0, type: 'u16' },
  { name: 'sizeBytes', offset: 2, type: 'u64' },
  { name: 'transmissionFlags', offset: 10, type: 'u16' },
] as const);

/** NBD_INFO_BLOCK_SIZE payload. */
export const INFO_BLOCK_SIZE = table('NBD_INFO_BLOCK_SIZE', 14, [
  { name: 'infoType', offset: 0, type: 'u16' },
  { name: 'minimum', offset: 2, type: 'u32' },
  { name: 'preferred', offset: 6, type: 'u32' },
  { name: 'maximum', offset: 10, type: 'u32' },
] as const);

/** EXPORT_NAME success: size and flags, then 124 zero bytes unless NO_ZEROES was agreed. */
export const EXPORT_NAME_REPLY = table('EXPORT_NAME reply', 10, [
  { name: 'sizeBytes', offset: 0, type: 'u64' },
  { name: 'transmissionFlags', offset: 8, type: 'u16' },
] as const);
export const EXPORT_NAME_ZERO_PAD_BYTES = 124;

/** C->S transmission request, followed by `length` bytes of payload for WRITE. */
export const REQUEST = table('request', 28, [
  { name: 'magic', offset: 0, type: 'u32' },
  { name: 'flags', offset: 4, type: 'u16' },
  { name: 'type', offset: 6, type: 'u16' },
  { name: 'cookie', offset: 8, type: 'u64' },
  { name: 'offset', offset: 16, type: 'u64' },
  { name: 'length', offset: 24, type: 'u32' },
] as const);

/** S->C simple reply, followed by the data of a successful READ. */
export const SIMPLE_REPLY = table('simple reply', 16, [
  { name: 'magic', offset: 0, type: 'u32' },
  { name: 'error', offset: 4, type: 'u32' },
  { name: 'cookie', offset: 8, type: 'u64' },
] as const);

/** S->C structured reply chunk header, followed by `length` bytes of chunk payload. */
export const CHUNK_HEADER = table('structured reply chunk', 20, [
  { name: 'magic', offset: 0, type: 'u32' },
  { name: 'flags', offset: 4, type: 'u16' },
  { name: 'type', offset: 6, type: 'u16' },
  { name: 'cookie', offset: 8, type: 'u64' },
  { name: 'length', offset: 16, type: 'u32' },
] as const);

/** Payload head of OFFSET_HOLE. */
export const OFFSET_HOLE = table('OFFSET_HOLE payload', 12, [
  { name: 'offset', offset: 0, type: 'u64' },
  { name: 'holeSize', offset: 8, type: 'u32' },
] as const);

/** Payload head of an ERROR chunk, followed by `messageLength` bytes of UTF-8. */
export const CHUNK_ERROR = table('ERROR payload', 6, [
  { name: 'error', offset: 0, type: 'u32' },
  { name: 'messageLength', offset: 4, type: 'u16' },
] as const);

/** One base:allocation descriptor in a BLOCK_STATUS chunk (after the u32 context id). */
export const BLOCK_DESCRIPTOR = table('block descriptor', 8, [
  { name: 'length', offset: 0, type: 'u32' },
  { name: 'statusFlags', offset: 4, type: 'u32' },
] as const);
