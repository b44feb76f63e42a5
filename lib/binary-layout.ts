// The one way sbm declares an on-disk or on-wire structure: a layout is a table of fields
// (name, offset, type, size for byte fields), checked once when it is declared (fields contiguous
// from 0 and covering the declared size exactly, so an offset typo fails at load), with decode,
// encode and allocation-free per-field readers and writers all driven by the same table. A reader and a writer
// therefore cannot disagree about a layout, and a new format header is a declaration plus the
// format's own validation.
//
// Inputs are hostile: decoding a buffer too short for the layout, a field declared with `equals`
// (a magic) that holds anything else, or a `u64n` past 2^53 is SBM_CORRUPT naming the structure
// and, when given, the file. `u64` fields decode as bigint for callers that narrow them with their
// own bounds; `u64n` fields decode as plain numbers (offsets and counts that must be exact).

import { SbmError } from './errors.js';

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'u64n' | 'bytes';
export type ByteOrder = 'be' | 'le';

export interface FieldSpec {
  readonly name: string;
  readonly offset: number;
  readonly type: FieldType;
  /** Byte length; required for `bytes`, checked against the type's width for the others. */
  readonly size?: number;
  /** The value this field must hold (a magic): a number, a bigint, or ASCII text for `bytes`. */
  readonly equals?: number | bigint | string;
}

type ValueOf<T extends FieldType> = T extends 'u64' ? bigint : T extends 'bytes' ? Buffer : number;

/** Decoded values: u8/u16/u32/u64n as number, u64 as bigint, bytes as Buffer. */
export type LayoutValues<F extends readonly FieldSpec[]> = { [K in F[number] as K['name']]: ValueOf<K['type']> };

/** What encode takes: every number field; byte fields may be left out (written as zeros). */
export type LayoutInput<F extends readonly FieldSpec[]> = {
  [K in F[number] as K['type'] extends 'bytes' ? never : K['name']]: ValueOf<K['type']>;
} & { [K in F[number] as K['type'] extends 'bytes' ? K['name'] : never]?: Uint8Array };

/** Reads one field of a structure that starts at `at`, without allocating (bytes are a view). */
export type FieldReader<V> = (source: Buffer, at: number) => V;

/** Writes one field of a structure that starts at `at`, without allocating (bytes are copied, zero-padded). */
export type FieldWriter<V> = (target: Buffer, at: number, value: V) => void;

const WIDTH: Record<Exclude<FieldType, 'bytes'>, number> = { u8: 1, u16: 2, u32: 4, u64: 8, u64n: 8 };
const TWO_POW_32 = 0x1_0000_0000;
const MAX_SAFE_HIGH_WORD = 0x1fffff;

export class BinaryLayout<const F extends readonly FieldSpec[]> {
  // Parallel arrays, walked by index: decode and encode run per NBD request and per record.
  readonly #names: readonly string[];
  readonly #readers: ReadonlyArray<FieldReader<unknown>>;
  readonly #writers: ReadonlyArray<FieldWriter<unknown>>;
  readonly #checked: readonly FieldSpec[];

  constructor(
    readonly name: string,
    readonly sizeBytes: number,
    readonly byteOrder: ByteOrder,
    readonly fields: F,
  ) {
    let expected = 0;
    for (const field of fields) {
      const width = field.type === 'bytes' ? field.size : WIDTH[field.type];
      if (width === undefined || (field.size !== undefined && field.size !== width)) {
        throw new SbmError('SBM_INTERNAL', `${name}.${field.name}: size ${String(field.size)} does not fit type ${field.type}`);
      }
      if (field.offset !== expected)
        throw new SbmError('SBM_INTERNAL', `${name}.${field.name} declared at ${field.offset}, expected ${expected}`);
      expected += width;
    }
    if (expected !== sizeBytes) throw new SbmError('SBM_INTERNAL', `${name} fields cover ${expected} bytes, declared ${sizeBytes}`);
    this.#names = fields.map((field) => field.name);
    this.#readers = fields.map((field) => this.#makeReader(field));
    this.#writers = fields.map((field) => this.#makeWriter(field));
    this.#checked = fields.filter((field) => field.equals !== undefined);
  }

  /**
   * Decodes the structure at `at`. Throws SBM_CORRUPT (naming `source`, e.g. the file) when the
   * buffer is too short, a magic differs or a u64n field is past 2^53.
   */
  decode(source: Uint8Array, at = 0, where?: string): LayoutValues<F> {
    const view = Buffer.isBuffer(source) ? source : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    if (at < 0 || view.length - at < this.sizeBytes) {
      throw this.#corrupt(`${this.name} is truncated (${Math.max(0, view.length - at)} of ${this.sizeBytes} bytes)`, where);
    }
    const out: Record<string, unknown> = {};
    const names = this.#names;
    const readers = this.#readers;
    for (let index = 0; index < names.length; index++) out[names[index] as string] = (readers[index] as FieldReader<unknown>)(view, at);
    for (const field of this.#checked) {
      if (!this.#holds(field, out[field.name]))
        throw this.#corrupt(`not a ${this.name} (${field.name} is not ${describe(field.equals)})`, where);
    }
    return out as LayoutValues<F>;
  }

  /** True when every `equals` field (the magics) at `at` holds its value; never throws. */
  matches(source: Uint8Array, at = 0): boolean {
    const view = Buffer.isBuffer(source) ? source : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    if (at < 0 || view.length - at < this.sizeBytes) return false;
    return this.#checked.every((field) => this.#holds(field, this.#readerOf(field.name)(view, at)));
  }

  /**
   * Writes the fields into `target` at `at` (default: a new zeroed buffer of the layout's size).
   * A u64n value that is not a safe non-negative integer is SBM_INTERNAL: the caller computed it.
   */
  encode(values: LayoutInput<F>, target: Buffer = Buffer.alloc(this.sizeBytes), at = 0): Buffer {
    const record = values as Record<string, unknown>;
    const names = this.#names;
    const writers = this.#writers;
    for (let index = 0; index < names.length; index++) (writers[index] as FieldWriter<unknown>)(target, at, record[names[index] as string]);
    return target;
  }

  /** The allocation-free reader of one field, for hot loops over many records. */
  reader<N extends F[number]['name']>(fieldName: N): FieldReader<LayoutValues<F>[N & keyof LayoutValues<F>]> {
    return this.#readerOf(fieldName) as FieldReader<LayoutValues<F>[N & keyof LayoutValues<F>]>;
  }

  /** The allocation-free writer of one field (e.g. a checksum stored after the bytes it covers are encoded). */
  writer<N extends F[number]['name']>(fieldName: N): FieldWriter<LayoutInput<F>[N & keyof LayoutInput<F>]> {
    const writer = this.#writers[this.#indexOf(fieldName)];
    if (writer === undefined) throw new SbmError('SBM_INTERNAL', `${this.name} has no field ${fieldName}`);
    return writer as FieldWriter<LayoutInput<F>[N & keyof LayoutInput<F>]>;
  }

  /** Byte offset of a field inside the structure. */
  offsetOf(fieldName: F[number]['name']): number {
    return this.#field(fieldName).offset;
  }

  #readerOf(fieldName: string): FieldReader<unknown> {
    const reader = this.#readers[this.#indexOf(fieldName)];
    if (reader === undefined) throw new SbmError('SBM_INTERNAL', `${this.name} has no field ${fieldName}`);
    return reader;
  }

  #indexOf(fieldName: string): number {
    return this.#names.indexOf(fieldName);
  }

  #field(fieldName: string): FieldSpec {
    const field = this.fields.find((candidate) => candidate.name === fieldName);
    if (field === undefined) throw new SbmError('SBM_INTERNAL', `${this.name} has no field ${fieldName}`);
    return field;
  }

  #makeReader(field: FieldSpec): FieldReader<unknown> {
    const { offset } = field;
    const big = this.byteOrder === 'be';
    switch (field.type) {
      case 'u8':
        return (source, at) => source.readUInt8(at + offset);
      case 'u16':
        return big ? (source, at) => source.readUInt16BE(at + offset) : (source, at) => source.readUInt16LE(at + offset);
      case 'u32':
        return big ? (source, at) => source.readUInt32BE(at + offset) : (source, at) => source.readUInt32LE(at + offset);
      case 'u64':
        return big ? (source, at) => source.readBigUInt64BE(at + offset) : (source, at) => source.readBigUInt64LE(at + offset);
      case 'u64n': {
        const what = `${this.name}.${field.name}`;
        return big
          ? (source, at) => safeU64(source.readUInt32BE(at + offset), source.readUInt32BE(at + offset + 4), what)
          : (source, at) => safeU64(source.readUInt32LE(at + offset + 4), source.readUInt32LE(at + offset), what);
      }
      default: {
        const size = field.size ?? 0;
        return (source, at) => source.subarray(at + offset, at + offset + size);
      }
    }
  }

  #makeWriter(field: FieldSpec): FieldWriter<unknown> {
    const { offset } = field;
    const big = this.byteOrder === 'be';
    switch (field.type) {
      case 'u8':
        return (target, at, value) => void target.writeUInt8(Number(value ?? 0), at + offset);
      case 'u16':
        return big
          ? (target, at, value) => void target.writeUInt16BE(Number(value ?? 0), at + offset)
          : (target, at, value) => void target.writeUInt16LE(Number(value ?? 0), at + offset);
      case 'u32':
        return big
          ? (target, at, value) => void target.writeUInt32BE(Number(value ?? 0) >>> 0, at + offset)
          : (target, at, value) => void target.writeUInt32LE(Number(value ?? 0) >>> 0, at + offset);
      case 'u64':
        return big
          ? (target, at, value) => void target.writeBigUInt64BE(BigInt((value as number | bigint | undefined) ?? 0), at + offset)
          : (target, at, value) => void target.writeBigUInt64LE(BigInt((value as number | bigint | undefined) ?? 0), at + offset);
      case 'u64n': {
        // Two u32 halves: no bigint per write on the hot paths that store offsets and generations.
        const what = `${this.name}.${field.name}`;
        return big
          ? (target, at, value) => {
              const number = checkedU64n(value, what);
              target.writeUInt32BE(Math.floor(number / TWO_POW_32), at + offset);
              target.writeUInt32BE(number >>> 0, at + offset + 4);
            }
          : (target, at, value) => {
              const number = checkedU64n(value, what);
              target.writeUInt32LE(number >>> 0, at + offset);
              target.writeUInt32LE(Math.floor(number / TWO_POW_32), at + offset + 4);
            };
      }
      default: {
        const size = field.size ?? 0;
        return (target, at, value) => {
          const position = at + offset;
          target.fill(0, position, position + size);
          const bytes = value as Uint8Array | undefined;
          if (bytes !== undefined) Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(size, bytes.byteLength)).copy(target, position);
        };
      }
    }
  }

  #holds(field: FieldSpec, value: unknown): boolean {
    if (typeof field.equals === 'string') return Buffer.isBuffer(value) && value.equals(Buffer.from(field.equals, 'latin1'));
    return value === field.equals;
  }

  #corrupt(why: string, where: string | undefined): SbmError {
    return new SbmError('SBM_CORRUPT', where === undefined ? why : `${where}: ${why}`, {
      structure: this.name,
      ...(where === undefined ? {} : { path: where }),
    });
  }
}

/** Declares a layout; throws SBM_INTERNAL at load when the table is inconsistent (a bug, not input). */
export function defineLayout<const F extends readonly FieldSpec[]>(
  name: string,
  sizeBytes: number,
  byteOrder: ByteOrder,
  fields: F,
): BinaryLayout<F> {
  return new BinaryLayout(name, sizeBytes, byteOrder, fields);
}

/** Narrows a 64-bit value to a safe integer; larger values mean damage (SBM_CORRUPT naming `what` and the file). */
export function toSafeInteger(value: bigint, what: string, path?: string): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    const where = path === undefined ? '' : `${path}: `;
    throw new SbmError('SBM_CORRUPT', `${where}${what} is ${value}, larger than 2^53`, { what, ...(path === undefined ? {} : { path }) });
  }
  return Number(value);
}

function safeU64(high: number, low: number, what: string): number {
  if (high > MAX_SAFE_HIGH_WORD)
    throw new SbmError('SBM_CORRUPT', `${what} is ${BigInt(high) * BigInt(TWO_POW_32) + BigInt(low)}, larger than 2^53`, { what });
  return high * TWO_POW_32 + low;
}

function checkedU64n(value: unknown, what: string): number {
  const number = Number((value as number | bigint | undefined) ?? 0);
  if (!Number.isSafeInteger(number) || number < 0)
    throw new SbmError('SBM_INTERNAL', `${what}: ${String(value)} is not a safe non-negative integer`, { what });
  return number;
}

function describe(value: number | bigint | string | undefined): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `0x${value.toString(16)}`;
  return value === undefined ? 'set' : `0x${value.toString(16)}`;
}
