// The tracker's own files under .sbm/ are read as hostile input: a changes.log, stat-cache or
// state that is a folder, a FIFO, a symlink or absurdly large means tracking was lost (a new
// epoch), never a hang, a huge allocation or an internal error. Types are checked with lstat
// (no symlink following) before anything is opened, and opens add O_NOFOLLOW | O_NONBLOCK so a
// file swapped in between cannot block or lead outside the bundle.
//
// Full filesystems: .sbm/reserve is a file of RESERVE_BYTES kept beside the tracker's files. When
// a tracker write meets ENOSPC/EDQUOT the reserve is deleted and the write retried once, so the
// records a trim needs (the one operation that frees space) still fit; the reserve is made again
// at the next read-write open that finds room for it.

import { constants } from 'node:fs';
import { lstat, open, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { SbmError, fromSystemError } from '../errors.js';
import { readFully, writeFully } from '../fs/read-fully.js';

const SAFE_FLAGS = constants.O_NOFOLLOW | constants.O_NONBLOCK;
export const RESERVE_FILE = 'reserve';
/** Room for a rewrite of .sbm/state (at most ~200 KiB with every kept generation) and log records. */
export const RESERVE_BYTES = 512 * 1024;

export type FileCheck = { kind: 'missing' } | { kind: 'bad'; reason: string } | { kind: 'ok'; sizeBytes: number };

/** What is at `path`, without following a symlink: a regular file no larger than `maxBytes`, or why not. */
export async function checkTrackingFile(path: string, maxBytes: number): Promise<FileCheck> {
  let info;
  try {
    info = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw fromSystemError(error, 'cannot inspect change-tracking file', path);
  }
  if (!info.isFile()) return { kind: 'bad', reason: `${kindOf(info)} where a file belongs` };
  if (info.size > maxBytes) return { kind: 'bad', reason: `${info.size} bytes, more than the ${maxBytes} it can hold` };
  return { kind: 'ok', sizeBytes: info.size };
}

/** Opens a tracker file checked by checkTrackingFile; throws 'bad' when it changed type meanwhile. */
export async function openTrackingFile(path: string, flags: number): Promise<FileHandle> {
  const handle = await open(path, flags | SAFE_FLAGS);
  const info = await handle.stat();
  if (!info.isFile()) {
    await handle.close();
    throw new SbmError('SBM_CORRUPT', `${path} is a ${kindOf(info)}, not a file`, { path });
  }
  return handle;
}

/** The whole file, or why it cannot be one of the tracker's files. */
export async function readTrackingFile(
  path: string,
  maxBytes: number,
): Promise<{ kind: 'missing' } | { kind: 'bad'; reason: string } | { kind: 'ok'; bytes: Buffer }> {
  const check = await checkTrackingFile(path, maxBytes);
  if (check.kind !== 'ok') return check;
  const handle = await openTrackingFile(path, constants.O_RDONLY).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if ((error as SbmError).code === 'SBM_CORRUPT' || (error as NodeJS.ErrnoException).code === 'ELOOP') return 'bad' as const;
    throw fromSystemError(error, 'cannot open change-tracking file', path);
  });
  if (handle === undefined) return { kind: 'missing' };
  if (handle === 'bad') return { kind: 'bad', reason: 'replaced by something other than a file' };
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) return { kind: 'bad', reason: `${size} bytes, more than the ${maxBytes} it can hold` };
    const bytes = Buffer.alloc(size);
    await readFully(handle, bytes, 0);
    return { kind: 'ok', bytes };
  } finally {
    await handle.close();
  }
}

/** Removes whatever non-file sits where a tracker file belongs (a folder included), so a new one can be renamed there. */
export async function removeIfNotFile(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  // rm removes a symlink itself, never its target.
  if (info !== undefined && !info.isFile()) await rm(path, { recursive: true, force: true });
}

function kindOf(info: { isDirectory(): boolean; isFIFO(): boolean; isSymbolicLink(): boolean; isSocket(): boolean }): string {
  if (info.isSymbolicLink()) return 'symlink';
  if (info.isDirectory()) return 'folder';
  if (info.isFIFO()) return 'FIFO';
  if (info.isSocket()) return 'socket';
  return 'special file';
}

export function isNoSpace(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** Creates .sbm/reserve when missing and there is room; a full filesystem just leaves it missing. */
export async function ensureReserve(sbmDir: string): Promise<void> {
  const path = join(sbmDir, RESERVE_FILE);
  const check = await checkTrackingFile(path, RESERVE_BYTES);
  if (check.kind === 'ok' && check.sizeBytes === RESERVE_BYTES) return;
  if (check.kind === 'bad') await rm(path, { recursive: true, force: true }); // rm never follows a symlink
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | SAFE_FLAGS, 0o600);
    // Written, not only sized: a sparse file would hold no blocks to give back.
    await writeFully(handle, Buffer.alloc(RESERVE_BYTES), 0);
    await handle.close();
  } catch {
    await handle?.close().catch(() => undefined);
    // No room (or the name is taken by something odd): run without a reserve this time. The
    // reserve only helps on a full filesystem; failing to make it never fails an open.
    await unlink(path).catch(() => undefined);
  }
}

/** Deletes .sbm/reserve; true when it existed (so a retry may now find room). */
export async function releaseReserve(sbmDir: string): Promise<boolean> {
  try {
    await unlink(join(sbmDir, RESERVE_FILE));
    return true;
  } catch {
    return false; // missing (already used) or not removable: nothing to give back
  }
}

/** Runs a tracker write; on ENOSPC/EDQUOT frees the reserve and tries once more, then fails with SBM_NO_SPACE. */
export async function withSpace<T>(sbmDir: string, doing: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (!isNoSpace(error)) throw error;
    if (!(await releaseReserve(sbmDir))) throw noSpace(error, doing, sbmDir);
    try {
      return await write();
    } catch (again) {
      throw isNoSpace(again) ? noSpace(again, doing, sbmDir) : again;
    }
  }
}

function noSpace(error: unknown, doing: string, sbmDir: string): SbmError {
  return new SbmError(
    'SBM_NO_SPACE',
    `the filesystem holding ${sbmDir} is full: cannot ${doing}; free some space and retry`,
    { path: sbmDir, errno: (error as NodeJS.ErrnoException).code },
    { cause: error },
  );
}
