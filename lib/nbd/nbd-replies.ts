// Encoders for every frame the server sends: option replies during the handshake, and simple or
// structured replies during transmission. Each returns one buffer so a reply is written whole
// (a half-written reply desynchronises the client for good).

import * as C from './constants.js';
import {
  BLOCK_DESCRIPTOR,
  BLOCK_STATUS_HEAD,
  CHUNK_ERROR,
  CHUNK_HEADER,
  OFFSET_DATA,
  OFFSET_HOLE,
  OPTION_REPLY_HEADER,
  SIMPLE_REPLY,
} from './wire-table.js';

/** Longest error message sent in an ERROR chunk (qemu rejects non-data chunks over 1000 bytes). */
const MAX_ERROR_MESSAGE_BYTES = 512;

export function optionReply(option: number, replyType: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(OPTION_REPLY_HEADER.sizeBytes + data.length);
  OPTION_REPLY_HEADER.encode({ magic: C.NBD_REP_MAGIC, option, replyType, length: data.length }, out);
  data.copy(out, OPTION_REPLY_HEADER.sizeBytes);
  return out;
}

export function simpleReply(cookie: bigint, error: number): Buffer {
  return SIMPLE_REPLY.encode({ magic: C.NBD_SIMPLE_REPLY_MAGIC, error, cookie });
}

function chunk(cookie: bigint, type: number, flags: number, payloadLength: number): Buffer {
  const out = Buffer.allocUnsafe(CHUNK_HEADER.sizeBytes + payloadLength);
  CHUNK_HEADER.encode({ magic: C.NBD_STRUCTURED_REPLY_MAGIC, flags, type, cookie, length: payloadLength }, out);
  return out;
}

/** The final NONE chunk: success with nothing to say. */
export function noneChunk(cookie: bigint): Buffer {
  return chunk(cookie, C.NBD_REPLY_TYPE_NONE, C.NBD_REPLY_FLAG_DONE, 0);
}

export function errorChunk(cookie: bigint, error: number, message: string): Buffer {
  const text = Buffer.from(message, 'utf8').subarray(0, MAX_ERROR_MESSAGE_BYTES);
  const out = chunk(cookie, C.NBD_REPLY_TYPE_ERROR, C.NBD_REPLY_FLAG_DONE, CHUNK_ERROR.sizeBytes + text.length);
  CHUNK_ERROR.encode({ error, messageLength: text.length }, out, CHUNK_HEADER.sizeBytes);
  text.copy(out, CHUNK_HEADER.sizeBytes + CHUNK_ERROR.sizeBytes);
  return out;
}

/** A final OFFSET_HOLE chunk: `holeSize` zero bytes at `offset`, not sent. */
export function holeChunk(cookie: bigint, offset: number, holeSize: number): Buffer {
  const out = chunk(cookie, C.NBD_REPLY_TYPE_OFFSET_HOLE, C.NBD_REPLY_FLAG_DONE, OFFSET_HOLE.sizeBytes);
  OFFSET_HOLE.encode({ offset, holeSize }, out, CHUNK_HEADER.sizeBytes);
  return out;
}

/**
 * A successful READ reply with room for the data: the whole frame is one buffer and `data` is the
 * view the device reads into, so the reply costs one socket write and no extra copy.
 */
export function readReply(
  cookie: bigint,
  offset: number,
  length: number,
  structured: boolean,
  allocate: (length: number) => Buffer = (size) => Buffer.allocUnsafe(size),
): { frame: Buffer; data: Buffer } {
  if (!structured) {
    const frame = allocate(SIMPLE_REPLY.sizeBytes + length);
    SIMPLE_REPLY.encode({ magic: C.NBD_SIMPLE_REPLY_MAGIC, error: 0, cookie }, frame);
    return { frame, data: frame.subarray(SIMPLE_REPLY.sizeBytes) };
  }
  const head = CHUNK_HEADER.sizeBytes + OFFSET_DATA.sizeBytes;
  const frame = allocate(head + length);
  const payloadLength = OFFSET_DATA.sizeBytes + length;
  CHUNK_HEADER.encode(
    {
      magic: C.NBD_STRUCTURED_REPLY_MAGIC,
      flags: C.NBD_REPLY_FLAG_DONE,
      type: C.NBD_REPLY_TYPE_OFFSET_DATA,
      cookie,
      length: payloadLength,
    },
    frame,
  );
  OFFSET_DATA.encode({ offset }, frame, CHUNK_HEADER.sizeBytes);
  return { frame, data: frame.subarray(head) };
}

export interface BlockStatusDescriptor {
  readonly length: number;
  readonly statusFlags: number;
}

/** The final BLOCK_STATUS chunk for one meta context. */
export function blockStatusChunk(cookie: bigint, contextId: number, descriptors: readonly BlockStatusDescriptor[]): Buffer {
  const out = chunk(
    cookie,
    C.NBD_REPLY_TYPE_BLOCK_STATUS,
    C.NBD_REPLY_FLAG_DONE,
    BLOCK_STATUS_HEAD.sizeBytes + descriptors.length * BLOCK_DESCRIPTOR.sizeBytes,
  );
  BLOCK_STATUS_HEAD.encode({ contextId }, out, CHUNK_HEADER.sizeBytes);
  let at = CHUNK_HEADER.sizeBytes + BLOCK_STATUS_HEAD.sizeBytes;
  for (const descriptor of descriptors) {
    BLOCK_DESCRIPTOR.encode(descriptor, out, at);
    at += BLOCK_DESCRIPTOR.sizeBytes;
  }
  return out;
}

/** An error for a request: structured for READ/BLOCK_STATUS once structured replies are on. */
export function requestErrorReply(cookie: bigint, error: number, structured: boolean, message: string): Buffer {
  return structured ? errorChunk(cookie, error, message) : simpleReply(cookie, error);
}
