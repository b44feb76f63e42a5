// Reads of an accepted connection land in buffers from the session's pool instead of a fresh
// 64 KiB allocation per read. At GiB/s those allocations were external memory that made V8 run
// a full collection every few dozen MiB: a third of the server's CPU on a sequential write.
//
// Node offers this (net.Socket's `onread`: a buffer function, asked for the next buffer after
// every read) only to sockets it constructs, not to the ones a server accepts. So the accepted
// socket's handle moves to a new Socket made with `onread` (the server was created with
// pauseOnConnect, so nothing was read yet), and the accepted socket, now without a handle, is
// destroyed when the new one closes: that is what tells the server the connection ended.
// A Node without the private `_handle` field keeps the accepted socket and its 'data' events.

import { Socket } from 'node:net';
import type { BufferPool } from './buffer-pool.js';

/** Bytes each read may fill: one pooled size class (a WRITE of 256 KiB takes one or two reads). */
export const READ_CHUNK_BYTES = 256 * 1024;

export interface ConnectionInput {
  readonly socket: Socket;
  /** True when chunks come from the pool: whoever parses them gives each back (pool.release). */
  readonly pooled: boolean;
}

/**
 * Takes over `accepted` so that every chunk it receives, a view of a pooled buffer, goes to
 * `onChunk` (which owns it from then on). Without the private handle, returns `accepted` as is,
 * unpaused, with onChunk attached to its 'data' events.
 */
export function acceptWithPooledReads(accepted: Socket, pool: BufferPool, onChunk: (chunk: Buffer) => void): ConnectionInput {
  const handle = (accepted as unknown as { _handle?: unknown })._handle;
  if (typeof handle !== 'object' || handle === null) {
    accepted.on('data', onChunk);
    accepted.resume();
    return { socket: accepted, pooled: false };
  }
  let current: Buffer | undefined;
  const nextBuffer = () => {
    current = pool.acquire(READ_CHUNK_BYTES);
    return current;
  };
  const socket = new Socket({
    handle,
    allowHalfOpen: true,
    onread: {
      buffer: nextBuffer,
      callback: (bytesRead: number, buffer: Uint8Array) => {
        // `buffer` is the one this read filled; the next read gets a fresh one (nextBuffer).
        const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytesRead);
        current = undefined;
        onChunk(chunk);
        return true;
      },
    },
  } as ConstructorParameters<typeof Socket>[0]);
  (accepted as unknown as { _handle: unknown })._handle = null;
  socket.once('close', () => {
    if (current !== undefined) pool.release(current); // the buffer handed out for a read that never came
    current = undefined;
    accepted.destroy();
  });
  return { socket, pooled: true };
}
