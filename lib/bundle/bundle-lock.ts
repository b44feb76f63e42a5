// One writer at a time: a non-blocking flock on `lock` (exclusive read-write, shared read-only),
// as macOS DiskImages2 does. The lock file stays empty; the holder's pid goes to .sbm/owner so a
// refused opener can say who holds it.

import { constants } from 'node:fs';
import { unlink, type FileHandle } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../errors.js';
import type { WarningSink } from '../warnings.js';
import type { BundlePaths } from './bundle-paths.js';
import { fsExt } from '../fs/fs-ext.js';
import { isNotRegularFile, openRegular, readSmallFile } from '../fs/safe-open.js';

export type LockMode = 'exclusive' | 'shared';

export class BundleLock {
  private released = false;

  private constructor(
    private readonly handle: FileHandle | undefined,
    private readonly ownerFile?: string,
    /** The owner file being written: advisory, so open does not wait for it; release does. */
    private readonly ownerWritten: Promise<void> = Promise.resolve(),
  ) {}

  /** No lock at all: for force-shared read-only looks at a bundle someone else writes. */
  static none(): BundleLock {
    return new BundleLock(undefined);
  }

  /**
   * `recordOwner: false` takes an exclusive lock without writing .sbm/owner: for a bundle that
   * must not change while locked (a snapshot about to be deleted).
   */
  static async acquire(
    paths: BundlePaths,
    mode: LockMode,
    onWarning: WarningSink,
    options: { recordOwner?: boolean } = {},
  ): Promise<BundleLock> {
    let handle: FileHandle;
    try {
      // Read-only opens must not create files, but may lock an existing `lock`. Never through a
      // symlink (it would create or lock a file outside the bundle), never blocking on a FIFO.
      const flags = mode === 'exclusive' ? constants.O_RDWR | constants.O_APPEND | constants.O_CREAT : constants.O_RDONLY;
      handle = (await openRegular(paths.lock, flags)).handle;
    } catch (error) {
      if (isNotRegularFile(error)) {
        throw new SbmError(
          'SBM_CORRUPT',
          `${paths.lock} is a ${error.kind}, not a regular file; sbm will not lock through it (replace it with an empty file)`,
          {
            path: paths.lock,
            kind: error.kind,
          },
        );
      }
      const errno = (error as NodeJS.ErrnoException).code;
      if (errno === 'ENOENT' || errno === 'EROFS' || errno === 'EACCES') {
        onWarning({ code: 'SBM_NO_LOCK', message: `cannot open ${paths.lock} (${errno}); continuing without a lock` });
        return new BundleLock(undefined);
      }
      throw fromSystemError(error, 'cannot open lock file', paths.lock);
    }
    try {
      fsExt().flockSync(handle.fd, mode === 'exclusive' ? 'exnb' : 'shnb');
    } catch (error) {
      const errno = (error as NodeJS.ErrnoException).code;
      if (errno === 'ENOTSUP' || errno === 'EOPNOTSUPP' || errno === 'ENOLCK') {
        onWarning({ code: 'SBM_NO_LOCK', message: `filesystem does not support flock on ${paths.lock}; continuing without a lock` });
        return new BundleLock(handle);
      }
      await handle.close();
      if (errno === 'EWOULDBLOCK' || errno === 'EAGAIN') {
        const pid = await readOwnerPid(paths);
        const who = pid === undefined ? 'another process' : `pid ${pid}`;
        throw new SbmError('SBM_LOCKED', `bundle ${paths.root} is in use by ${who}`, { path: paths.root, pid });
      }
      throw fromSystemError(error, 'cannot lock', paths.lock);
    }
    if (mode === 'exclusive' && options.recordOwner !== false) {
      const ownerWritten = writeOwnerFile(paths.owner).catch(() => undefined); // advisory only; the flock is what counts
      return new BundleLock(handle, paths.owner, ownerWritten);
    }
    return new BundleLock(handle);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.ownerWritten; // unlink after the write, or a late write would leave a stale file
    // Stale owner files are checked for liveness anyway.
    if (this.ownerFile !== undefined) await unlink(this.ownerFile).catch(() => undefined);
    // Closing the descriptor drops the flock.
    await this.handle?.close();
  }
}

/** A fresh file (unlinked first, then created exclusively, no symlink followed): nothing outside the bundle is written. */
async function writeOwnerFile(path: string): Promise<void> {
  await unlink(path).catch(() => undefined); // absent is the usual case
  const { handle } = await openRegular(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL);
  try {
    await handle.writeFile(`${process.pid}\n`);
  } finally {
    await handle.close();
  }
}

/** A pid is a few digits: the owner file is read only when it is a small regular file. */
const OWNER_FILE_MAX_BYTES = 64;

async function readOwnerPid(paths: BundlePaths): Promise<number | undefined> {
  try {
    const owner = await readSmallFile(paths.owner, OWNER_FILE_MAX_BYTES);
    const pid = Number.parseInt(owner.bytes.toString('utf8'), 10);
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0); // throws when no such process: the file is stale
    return pid;
  } catch {
    return undefined; // no (live) owner: the holder is a reader, or not sbm
  }
}
