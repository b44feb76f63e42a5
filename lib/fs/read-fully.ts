// Positional I/O without short reads or writes: loop until the whole range is done.

import { read, readSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

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
 * readFully on a raw descriptor through fs.read's callback form: the NBD read path issues one
 * per 256 KiB request, and FileHandle.read's promise plumbing costs several microseconds more.
 */
export function readFullyFd(fd: number, target: Uint8Array, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const next = (): void => {
      read(fd, target, done, target.length - done, position + done, (error, bytesRead) => {
        if (error !== null) return reject(error);
        if (bytesRead === 0) {
          target.fill(0, done);
          return resolve(done);
        }
        done += bytesRead;
        if (done < target.length) next();
        else resolve(done);
      });
    };
    next();
  });
}

export async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * writeFully without the thread-pool round trip, for small writes into the page cache (a few
 * microseconds, against tens for a round trip). Blocks the event loop while the kernel copies.
 */
export function writeFullySync(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
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
