// A bounded LRU of open band files, so a 10 TB disk never exhausts descriptors. Handles are
// leased with a reference count: an entry in use is never closed under its user; eviction and
// retirement (band deleted or replaced) close it once the last lease is returned.

import type { FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { SbmError } from '../errors.js';
import { bandFileName } from '../bundle/bundle-paths.js';
import { isNotRegularFile, openRegular } from '../fs/safe-open.js';

interface PoolEntry {
  readonly handle: FileHandle;
  /** File size as sbm last set or saw it; kept current by the band store under the band lock. */
  sizeBytes: number;
  /** Link count at open: > 1 means the inode is shared with a snapshot or backup (frozen). */
  linkCount: number;
  leases: number;
  retired: boolean;
}

export interface BandLease {
  readonly bandIndex: number;
  readonly entry: PoolEntry;
}

export class BandPool {
  // Map iteration order is insertion order: re-inserting on use makes the first key the LRU.
  private readonly entries = new Map<number, PoolEntry>();

  constructor(
    private readonly pathOf: (bandIndex: number) => string,
    private readonly writable: boolean,
    readonly maxOpen = 64,
  ) {}

  get openCount(): number {
    return this.entries.size;
  }

  /**
   * Leases the band's file if it is already open, without awaiting anything (the per-request fast
   * path); undefined when it is not open, or when the pool is over its bound and acquire() should
   * run to evict.
   */
  leaseOpen(bandIndex: number): BandLease | undefined {
    const entry = this.entries.get(bandIndex);
    if (entry === undefined || this.entries.size > this.maxOpen) return undefined;
    this.entries.delete(bandIndex);
    this.entries.set(bandIndex, entry);
    entry.leases++;
    return { bandIndex, entry };
  }

  /** Leases the band's file; creates it when `create` is set. Returns undefined when it does not exist. */
  async acquire(bandIndex: number, create: boolean): Promise<BandLease | undefined> {
    let entry = this.entries.get(bandIndex);
    if (entry !== undefined) {
      this.entries.delete(bandIndex);
      this.entries.set(bandIndex, entry);
    } else {
      const opened = await this.openBand(bandIndex, create);
      if (opened === undefined) return undefined;
      // Another caller may have opened the same band while we awaited.
      const raced = this.entries.get(bandIndex);
      if (raced !== undefined) {
        await opened.handle.close();
        entry = raced;
      } else {
        entry = opened;
        this.entries.set(bandIndex, entry);
      }
    }
    entry.leases++; // before eviction, so the entry being handed out is never the one evicted
    await this.evictIdle();
    return { bandIndex, entry };
  }

  /** Returns a lease; only the last lease of a retired handle closes it (then the promise is returned). */
  release(lease: BandLease): Promise<void> | undefined {
    const { entry } = lease;
    entry.leases--;
    return entry.retired && entry.leases === 0 ? entry.handle.close() : undefined;
  }

  /** Forgets the band's handle (the file was deleted or renamed over); closes it when unused. */
  async retire(bandIndex: number): Promise<void> {
    const entry = this.entries.get(bandIndex);
    if (entry === undefined) return;
    this.entries.delete(bandIndex);
    entry.retired = true;
    if (entry.leases === 0) await entry.handle.close();
  }

  async closeAll(): Promise<void> {
    for (const bandIndex of [...this.entries.keys()]) await this.retire(bandIndex);
  }

  /**
   * Opens without following a symlink and checks the file is regular (fstat on the open
   * descriptor, so nothing can swap it in between): a band that is a symlink, FIFO or device is
   * damage, never read or written through. Checked here, once per open, not per I/O.
   */
  private async openBand(bandIndex: number, create: boolean): Promise<PoolEntry | undefined> {
    const flags = this.writable ? constants.O_RDWR | (create ? constants.O_CREAT : 0) : constants.O_RDONLY;
    const path = this.pathOf(bandIndex);
    try {
      const { handle, stats } = await openRegular(path, flags);
      return { handle, sizeBytes: stats.size, linkCount: stats.nlink, leases: 0, retired: false };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !create) return undefined;
      if (isNotRegularFile(error)) {
        throw new SbmError(
          'SBM_BAD_BAND',
          `band ${bandFileName(bandIndex)} (${path}) is a ${error.kind}, not a regular file; ` +
            'sbm will not read or write through it (see sbm check)',
          {
            path,
            bandIndex,
            kind: error.kind,
          },
        );
      }
      throw error;
    }
  }

  private async evictIdle(): Promise<void> {
    for (const [bandIndex, entry] of this.entries) {
      if (this.entries.size <= this.maxOpen) return;
      if (entry.leases === 0) await this.retire(bandIndex);
    }
  }
}
