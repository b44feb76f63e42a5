// NBD frame headers as declared layouts (lib/binary-layout.ts): each is checked against its size
// once at load, and encode, decode and the per-field readers all come from the same table. All
// integers are big-endian, as NBD requires. Magics are plain fields here, not `equals`: a wrong
// magic from a client is answered by the protocol (a close), not thrown as a corrupt file.
// Fields the client fills (cookies, request offsets) are u64, kept as bigint and bounds-checked in
// bigint; fields only the server fills (export size, reply offsets) are u64n, plain numbers.

import { type BinaryLayout, type FieldSpec, defineLayout } from '../binary-layout.js';

function table<const F extends readonly FieldSpec[]>(name: string, sizeBytes: number, fields: F): BinaryLayout<F> {
  return defineLayout(name, sizeBytes, 'be', fields);
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
  { name: 'sizeBytes', offset: 2, type: 'u64n' },
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
  { name: 'sizeBytes', offset: 0, type: 'u64n' },
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

/** Payload head of OFFSET_DATA, followed by the data read at `offset`. */
export const OFFSET_DATA = table('OFFSET_DATA payload', 8, [{ name: 'offset', offset: 0, type: 'u64n' }] as const);

/** Payload head of OFFSET_HOLE. */
export const OFFSET_HOLE = table('OFFSET_HOLE payload', 12, [
  { name: 'offset', offset: 0, type: 'u64n' },
  { name: 'holeSize', offset: 8, type: 'u32' },
] as const);

/** Payload head of an ERROR chunk, followed by `messageLength` bytes of UTF-8. */
export const CHUNK_ERROR = table('ERROR payload', 6, [
  { name: 'error', offset: 0, type: 'u32' },
  { name: 'messageLength', offset: 4, type: 'u16' },
] as const);

/** Payload head of a BLOCK_STATUS chunk, followed by its descriptors. */
export const BLOCK_STATUS_HEAD = table('BLOCK_STATUS payload', 4, [{ name: 'contextId', offset: 0, type: 'u32' }] as const);

/** One base:allocation descriptor in a BLOCK_STATUS chunk (after the u32 context id). */
export const BLOCK_DESCRIPTOR = table('block descriptor', 8, [
  { name: 'length', offset: 0, type: 'u32' },
  { name: 'statusFlags', offset: 4, type: 'u32' },
] as const);

/** The u32 length before each string of option data (export names, meta context queries). */
export const STRING_LENGTH = table('string length', 4, [{ name: 'length', offset: 0, type: 'u32' }] as const);

/** The u32 count of queries in LIST/SET_META_CONTEXT data, after the export name. */
export const QUERY_COUNT = table('query count', 4, [{ name: 'count', offset: 0, type: 'u32' }] as const);

/** The u16 count of information requests in INFO/GO data, after the export name. */
export const INFO_REQUEST_COUNT = table('info request count', 2, [{ name: 'count', offset: 0, type: 'u16' }] as const);

/** One u16 information type: each INFO/GO request, and the head of a NBD_REP_INFO payload. */
export const INFO_TYPE = table('info type', 2, [{ name: 'infoType', offset: 0, type: 'u16' }] as const);

/** Payload head of NBD_REP_META_CONTEXT, followed by the context name. */
export const META_CONTEXT_HEAD = table('META_CONTEXT reply', 4, [{ name: 'contextId', offset: 0, type: 'u32' }] as const);
