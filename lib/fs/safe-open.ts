// Opening files inside a bundle that someone else may have tampered with. Every path is opened
// without following a final symlink (O_NOFOLLOW) and without blocking (O_NONBLOCK: opening a FIFO
// would otherwise wait for a writer forever), then fstat'ed: only a regular file is used. Reads of
// small metadata files are bounded by what their format allows, so a 2 GB Info.plist or a token
// linked to /dev/zero costs nothing. Folders are checked with lstat: a `bands/` that is a symlink
// would put every band file outside the bundle.
//
// O_NONBLOCK has no effect on regular-file I/O on Linux, so handles opened here serve the hot path
// unchanged.

import { constants, lstatSync, type Stats } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';
import { SbmError } from '../errors.js';

const SAFE_FLAGS = constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * A path inside a bundle is a symlink, FIFO, device, socket or folder where a file belongs. Callers
 * that know what the file is for turn it into their own code (SBM_BAD_BAND, SBM_BAD_PLIST, ...).
 */
export class NotRegularFileError extends SbmError {
  constructor(
    readonly path: string,
    /** What the path is instead: "symlink", "FIFO", "folder", ... */
    readonly kind: string,
  ) {
    super('SBM_NOT_REGULAR_FILE', `${path} is a ${kind}, not a regular file`, { path, kind });
  }
}

export function isNotRegularFile(error: unknown): error is NotRegularFileError {
  return error instanceof NotRegularFileError;
}

/** What a non-regular file is, for messages. */
export function fileKind(stats: Stats): string {
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isDirectory()) return 'folder';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  if (stats.isSocket()) return 'socket';
  return stats.isFile() ? 'regular file' : 'special file';
}

/**
 * Opens `path` with `flags` (numeric fs.constants) plus O_NOFOLLOW|O_NONBLOCK and checks it is a
 * regular file; throws NotRegularFileError otherwise (ENOENT and other errors pass through). With
 * O_CREAT a dangling symlink fails too: nothing is created outside the bundle.
 */
export async function openRegular(path: string, flags: number, mode = 0o644): Promise<{ handle: FileHandle; stats: Stats }> {
  let handle: FileHandle;
  try {
    handle = await open(path, flags | SAFE_FLAGS, mode);
  } catch (error) {
    const errno = (error as NodeJS.ErrnoException).code;
    // ELOOP: the last component is a symlink. ENXIO: a FIFO opened for writing with no reader.
    if (errno === 'ELOOP' || errno === 'ENXIO' || errno === 'EISDIR') {
      const stats = await lstat(path).catch(() => undefined);
      throw new NotRegularFileError(path, stats === undefined ? (errno === 'ELOOP' ? 'symlink' : 'special file') : fileKind(stats));
    }
    throw error;
  }
  const stats = await handle.stat().catch(async (error: unknown) => {
    await handle.close();
    throw error;
  });
  if (!stats.isFile()) {
    await handle.close();
    throw new NotRegularFileError(path, fileKind(stats));
  }
  return { handle, stats };
}

/**
 * Reads a small regular file whole, or reports it too long without reading it: `tooLong` is set
 * and `bytes` is empty when its size exceeds `maxBytes`.
 */
export async function readSmallFile(path: string, maxBytes: number): Promise<{ bytes: Buffer; sizeBytes: number; tooLong: boolean }> {
  const { handle, stats } = await openRegular(path, constants.O_RDONLY);
  try {
    if (stats.size > maxBytes) return { bytes: Buffer.alloc(0), sizeBytes: stats.size, tooLong: true };
    // One byte more than the size: a file that grew since the fstat is caught as too long.
    const buffer = Buffer.alloc(Math.min(stats.size, maxBytes) + 1);
    const length = await readUpTo(handle, buffer);
    if (length > maxBytes) return { bytes: Buffer.alloc(0), sizeBytes: length, tooLong: true };
    return { bytes: buffer.subarray(0, length), sizeBytes: length, tooLong: false };
  } finally {
    await handle.close();
  }
}

async function readUpTo(handle: FileHandle, buffer: Buffer): Promise<number> {
  let done = 0;
  while (done < buffer.length) {
    const { bytesRead } = await handle.read(buffer, done, buffer.length - done, done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** undefined when `path` does not exist, 'directory' for a real folder, else what it is instead. */
export async function directoryKind(path: string): Promise<'directory' | string | undefined> {
  const stats = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (stats === undefined) return undefined;
  return stats.isDirectory() ? 'directory' : fileKind(stats);
}

/** Synchronous lstat check that `path` is a regular file (not followed); throws NotRegularFileError. */
export function assertRegularSync(path: string): Stats {
  const stats = lstatSync(path);
  if (!stats.isFile()) throw new NotRegularFileError(path, fileKind(stats));
  return stats;
}
