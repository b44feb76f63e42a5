// Positional I/O without short reads or writes: loop until the whole range is done.

import { read, readSync, write, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { SbmError } from '../errors.js';

/** Reads target.length bytes at `position`; bytes past end of file are left as zeros. Returns bytes read. */
export async function readFully(handle: FileHandle, target: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await handle.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) {
      target.fill(0, done);
      break;
    }
    done += bytesRead;
  }
  return done;
}

/**
 * readFully and writeFully on a raw descriptor through fs.read/fs.write's callback forms: the NBD
 * path issues one per request, so it skips FileHandle's promise plumbing, a cost paid per call
 * that is a visible share of the server's CPU on sequential reads.
 */
export function readFullyFd(fd: number, target: Uint8Array, position: number): Promise<number> {
  return transferFully(read, fd, target, position, 'zero-fill');
}

export async function writeFullyFd(fd: number, data: Uint8Array, position: number): Promise<void> {
  await transferFully(write, fd, data, position, 'fail');
}

type Transfer = (
  fd: number,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
  done: (error: Error | null, bytes: number) => void,
) => void;

/** Loops `transfer` until the buffer is done. A read that hits end of file zero-fills the rest; a write that makes no progress fails. */
function transferFully(
  transfer: Transfer,
  fd: number,
  buffer: Uint8Array,
  position: number,
  onNoProgress: 'zero-fill' | 'fail',
): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const next = (): void => {
      try {
        transfer(fd, buffer, done, buffer.length - done, position + done, settle);
      } catch (error) {
        reject(error as Error); // a bad argument throws at once rather than calling back
      }
    };
    const settle = (error: Error | null, bytes: number): void => {
      if (error !== null) {
        reject(error);
        return;
      }
      if (bytes === 0) {
        if (onNoProgress === 'fail') {
          reject(noProgress(buffer.length - done, position + done));
          return;
        }
        buffer.fill(0, done);
        resolve(done);
        return;
      }
      done += bytes;
      if (done < buffer.length) next();
      else resolve(done);
    };
    if (buffer.length === 0) resolve(0);
    else next();
  });
}

export async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten === 0) throw noProgress(data.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * writeFully without the thread-pool round trip, for small writes into the page cache, where the
 * round trip costs more than the copy. Blocks the event loop while the kernel copies.
 */
export function writeFullySync(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) {
    const bytesWritten = writeSync(fd, data, done, data.length - done, position + done);
    if (bytesWritten === 0) throw noProgress(data.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * A write that returned 0 would loop forever; no filesystem should, but a broken one may. It is
 * an I/O error like the kernel's EIO (data.errno, where callers look for the errno): the NBD
 * server answers it with NBD_EIO, and it is never taken for a full filesystem.
 */
function noProgress(bytes: number, position: number): SbmError {
  return new SbmError('SBM_IO', `write of ${bytes} bytes at ${position} made no progress`, { errno: 'EIO', bytes, position });
}

/** readFully without the thread-pool round trip, for small reads likely served from the page cache. */
export function readFullySync(fd: number, target: Uint8Array, position: number): number {
  let done = 0;
  while (done < target.length) {
    const bytesRead = readSync(fd, target, done, target.length - done, position + done);
    if (bytesRead === 0) {
      target.fill(0, done);
      break;
    }
    done += bytesRead;
  }
  return done;
}
