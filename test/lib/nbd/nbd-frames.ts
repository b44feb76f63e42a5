// Client-side frame builders and server-frame parsers for NBD tests: what a client would send,
// written independently of the server's own encoders so the tests check the wire, not themselves.

export const IHAVEOPT_HEX = '49484156454f5054';
export const REP_MAGIC_HEX = '0003e889045565a9';

export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

export function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0);
  return out;
}

export function u16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}

export function str32(text: string): Buffer {
  const bytes = Buffer.from(text);
  return Buffer.concat([u32(bytes.length), bytes]);
}

export function option(opt: number, data: Buffer = Buffer.alloc(0), length = data.length): Buffer {
  return Buffer.concat([hex(IHAVEOPT_HEX), u32(opt), u32(length), data]);
}

export function goData(name: string, infos: number[] = []): Buffer {
  return Buffer.concat([str32(name), u16(infos.length), ...infos.map(u16)]);
}

export function metaData(name: string, queries: string[]): Buffer {
  return Buffer.concat([str32(name), u32(queries.length), ...queries.map(str32)]);
}

export function request(type: number, flags: number, cookie: bigint, offset: bigint | number, length: number, payload?: Buffer): Buffer {
  const out = Buffer.alloc(28);
  out.writeUInt32BE(0x25609513, 0);
  out.writeUInt16BE(flags, 4);
  out.writeUInt16BE(type, 6);
  out.writeBigUInt64BE(cookie, 8);
  out.writeBigUInt64BE(BigInt(offset), 16);
  out.writeUInt32BE(length, 24);
  return payload === undefined ? out : Buffer.concat([out, payload]);
}

/** Client flags FIXED_NEWSTYLE | NO_ZEROES. */
export const CLIENT_FLAGS = hex('00000003');

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

/** Splits a run of option replies; throws on a bad magic. */
export function parseOptionReplies(bytes: Buffer): OptionReply[] {
  const out: OptionReply[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes.subarray(at, at + 8).toString('hex') !== REP_MAGIC_HEX) throw new Error(`bad option reply magic at ${at}`);
    const length = bytes.readUInt32BE(at + 16);
    out.push({ option: bytes.readUInt32BE(at + 8), type: bytes.readUInt32BE(at + 12), data: bytes.subarray(at + 20, at + 20 + length) });
    at += 20 + length;
  }
  return out;
}

export interface SimpleReply {
  kind: 'simple';
  error: number;
  cookie: bigint;
}

export interface ChunkReply {
  kind: 'chunk';
  flags: number;
  type: number;
  cookie: bigint;
  payload: Buffer;
}

/** Parses transmission replies; READ data after a simple reply must be sized by the caller. */
export function parseReply(bytes: Buffer, at = 0, readLength = 0): { reply: SimpleReply | ChunkReply; data?: Buffer; next: number } {
  const magic = bytes.readUInt32BE(at);
  if (magic === 0x67446698) {
    const reply: SimpleReply = { kind: 'simple', error: bytes.readUInt32BE(at + 4), cookie: bytes.readBigUInt64BE(at + 8) };
    const dataLength = reply.error === 0 ? readLength : 0;
    return { reply, data: bytes.subarray(at + 16, at + 16 + dataLength), next: at + 16 + dataLength };
  }
  if (magic === 0x668e33ef) {
    const length = bytes.readUInt32BE(at + 16);
    const reply: ChunkReply = {
      kind: 'chunk',
      flags: bytes.readUInt16BE(at + 4),
      type: bytes.readUInt16BE(at + 6),
      cookie: bytes.readBigUInt64BE(at + 8),
      payload: bytes.subarray(at + 20, at + 20 + length),
    };
    return { reply, next: at + 20 + length };
  }
  throw new Error(`bad reply magic 0x${magic.toString(16)} at ${at}`);
}
