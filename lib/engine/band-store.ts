// Per-band I/O for a sparse bundle. Band n is the file bands/<hex n> and covers virtual bytes
// [n*bandSize, (n+1)*bandSize); a missing band, and any byte past the end of a short band, reads
// as zeros. Rules kept here:
//   - a band file appears only when non-zero data lands in it, and never grows by trailing zeros;
//   - zeroing a whole band (or everything left in it) deletes or truncates the file;
//   - a band whose inode is shared (link count > 1: snapshot or backup) is frozen: the first change
//     copies it into .sbm/tmp, fsyncs, renames it over bands/<n>, and only then modifies it;
//   - changes to one band are ordered by a lock stripe; reads take no lock.

import { copyFile, constants as fsConstants, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Mutex } from 'async-mutex';
import createDebug from 'debug';
import { type Extent, isAllZero, pushExtent } from '../block-device.js';
import { bandFileName } from '../bundle/bundle-paths.js';
import { fsyncDirectory } from '../fs/atomic-write.js';
import { readFully, writeFully, writeFullySync } from '../fs/read-fully.js';
import { allocatedRuns } from '../fs/sparse-seek.js';
import { mapLimit } from '../map-limit.js';
import { type BandLease, BandPool } from './band-pool.js';
import type { MappedBitmaps } from './mapped-bitmaps.js';

const debug = createDebug('sbm:engine');
const LOCK_STRIPES = 256;
const FLUSH_CONCURRENCY = 8;
const ZERO_WRITE_CHUNK = Buffer.alloc(1024 * 1024);
/**
 * Writes up to this size are issued synchronously. Writes to one band run one after another under
 * its lock anyway, so the thread pool adds no parallelism there, only a round trip (~45 us on a
 * busy 2-core VM, against ~2 us for a 4 KiB pwrite into the page cache).
 */
const SYNC_WRITE_MAX_BYTES = 64 * 1024;
/**
 * At most this many synchronous writes per event-loop turn: a caller writing in a tight loop would
 * otherwise never give timers and sockets a turn (every await would settle as a microtask).
 */
const SYNC_WRITES_PER_TURN = 64;

/** Told before a band's content or existence changes; the change waits for the promise. */
export type BandChangeListener = (bandIndex: number) => Promise<void>;

export interface BandStoreOptions {
  readonly bandsDir: string;
  readonly tmpDir: string;
  readonly bandSizeBytes: number;
  readonly writable: boolean;
  readonly presentBands: Set<number>;
  readonly mapped?: MappedBitmaps;
  readonly maxOpenBands?: number;
}

export class BandStore {
  readonly bandSizeBytes: number;
  /** Indexes of band files that exist; loaded once at open, kept current by every change. */
  readonly present: Set<number>;
  private readonly pool: BandPool;
  private readonly stripes = Array.from({ length: LOCK_STRIPES }, () => new Mutex());
  private readonly dirtyBands = new Set<number>();
  private bandsDirDirty = false;
  private readonly listeners: BandChangeListener[] = [];
  private syncWritesThisTurn = 0;

  constructor(private readonly options: BandStoreOptions) {
    this.bandSizeBytes = options.bandSizeBytes;
    this.present = options.presentBands;
    this.pool = new BandPool((bandIndex) => this.pathOf(bandIndex), options.writable, options.maxOpenBands);
  }

  pathOf(bandIndex: number): string {
    return join(this.options.bandsDir, bandFileName(bandIndex));
  }

  onBandChange(listener: BandChangeListener): void {
    this.listeners.push(listener);
  }

  async read(bandIndex: number, offsetInBand: number, target: Uint8Array): Promise<void> {
    if (!this.present.has(bandIndex)) {
      target.fill(0);
      return;
    }
    const lease = await this.pool.acquire(bandIndex, false);
    if (lease === undefined) {
      target.fill(0); // deleted between the check and the open: it reads as zeros now
      return;
    }
    try {
      await readFully(lease.entry.handle, target, offsetInBand);
    } finally {
      await this.pool.release(lease);
    }
  }

  async write(bandIndex: number, offsetInBand: number, data: Uint8Array, durable: boolean): Promise<void> {
    await this.withBandLock(bandIndex, async () => {
      const exists = this.present.has(bandIndex);
      const allZero = isAllZero(data);
      if (!exists && allZero) return;
      const lease = exists ? await this.leaseForChange(bandIndex) : undefined;
      const fileSize = lease?.entry.sizeBytes ?? 0;
      // Never extend a band with trailing zeros: write up to the last non-zero byte, or up to the
      // current end of file when the write overlaps existing bytes.
      const lastNonZero = allZero ? -1 : lastNonZeroIndex(data);
      const writeEnd = Math.max(offsetInBand + lastNonZero + 1, Math.min(offsetInBand + data.length, fileSize));
      if (writeEnd <= offsetInBand) {
        if (lease !== undefined) await this.pool.release(lease);
        return;
      }
      await this.notifyChange(bandIndex);
      await this.options.mapped?.markWritten(bandIndex, offsetInBand, data.length);
      const target = lease ?? (await this.createBand(bandIndex));
      try {
        const piece = data.subarray(0, writeEnd - offsetInBand);
        if (this.maySyncWrite(piece.length)) writeFullySync(target.entry.handle.fd, piece, offsetInBand);
        else await writeFully(target.entry.handle, piece, offsetInBand);
        target.entry.sizeBytes = Math.max(target.entry.sizeBytes, writeEnd);
        this.dirtyBands.add(bandIndex);
        if (durable) await this.syncBand(target);
      } finally {
        await this.pool.release(target);
      }
    });
  }

  /** Makes [offsetInBand, +length) read as zeros: deletes, truncates or overwrites as cheapest. */
  async zero(bandIndex: number, offsetInBand: number, length: number, bandLengthBytes: number): Promise<void> {
    await this.withBandLock(bandIndex, async () => {
      if (!this.present.has(bandIndex)) return;
      const fileSize = await this.fileSize(bandIndex);
      if (fileSize === undefined || offsetInBand >= fileSize) return;
      const reachesEnd = offsetInBand + length >= Math.min(fileSize, bandLengthBytes);
      // Zeroing bytes that are already zero changes nothing: no record, no copy-on-write.
      if (!reachesEnd && (await this.rangeIsZero(bandIndex, offsetInBand, length))) return;
      await this.notifyChange(bandIndex);
      if (offsetInBand === 0 && reachesEnd) {
        // Unlinking never touches a shared inode, so no copy-on-write is needed.
        await this.deleteBand(bandIndex);
        return;
      }
      const lease = await this.leaseForChange(bandIndex);
      if (lease === undefined) return;
      try {
        if (reachesEnd) {
          await lease.entry.handle.truncate(offsetInBand);
          lease.entry.sizeBytes = offsetInBand;
        } else {
          for (let done = 0; done < length; done += ZERO_WRITE_CHUNK.length) {
            const piece = Math.min(ZERO_WRITE_CHUNK.length, length - done);
            await writeFully(lease.entry.handle, ZERO_WRITE_CHUNK.subarray(0, piece), offsetInBand + done);
          }
        }
        this.dirtyBands.add(bandIndex);
      } finally {
        await this.pool.release(lease);
      }
    });
  }

  private async rangeIsZero(bandIndex: number, offsetInBand: number, length: number): Promise<boolean> {
    const buffer = Buffer.allocUnsafe(Math.min(length, ZERO_WRITE_CHUNK.length));
    for (let done = 0; done < length; done += buffer.length) {
      const view = buffer.subarray(0, Math.min(buffer.length, length - done));
      await this.read(bandIndex, offsetInBand + done, view);
      if (!isAllZero(view)) return false;
    }
    return true;
  }

  private async fileSize(bandIndex: number): Promise<number | undefined> {
    const lease = await this.pool.acquire(bandIndex, false);
    if (lease === undefined) return undefined;
    const size = lease.entry.sizeBytes;
    await this.pool.release(lease);
    return size;
  }

  /** Cuts a band to `lengthBytes` (used when the disk shrinks). */
  async truncate(bandIndex: number, lengthBytes: number): Promise<void> {
    await this.zero(bandIndex, lengthBytes, this.bandSizeBytes, this.bandSizeBytes);
  }

  async extents(bandIndex: number, offsetInBand: number, length: number, bandStart: number): Promise<Extent[]> {
    const list: Extent[] = [];
    const end = offsetInBand + length;
    const lease = this.present.has(bandIndex) ? await this.pool.acquire(bandIndex, false) : undefined;
    if (lease === undefined) return [{ offset: bandStart + offsetInBand, length, kind: 'hole' }];
    try {
      let position = offsetInBand;
      const dataEnd = Math.min(end, lease.entry.sizeBytes);
      for (const run of dataEnd > position ? allocatedRuns(lease.entry.handle.fd, position, dataEnd) : []) {
        pushExtent(list, { offset: bandStart + position, length: run.offset - position, kind: 'hole' });
        pushExtent(list, { offset: bandStart + run.offset, length: run.length, kind: 'data' });
        position = run.offset + run.length;
      }
      pushExtent(list, { offset: bandStart + position, length: end - position, kind: 'hole' });
      return list;
    } finally {
      await this.pool.release(lease);
    }
  }

  /** Makes every acknowledged change durable: bitmaps first, then bands, then the bands folder. */
  async flush(): Promise<void> {
    await this.options.mapped?.flush();
    const bands = [...this.dirtyBands];
    this.dirtyBands.clear();
    try {
      // Several fdatasyncs in flight let the device work on them together.
      await mapLimit(bands, FLUSH_CONCURRENCY, async (bandIndex) => {
        const lease = this.present.has(bandIndex) ? await this.pool.acquire(bandIndex, false) : undefined;
        if (lease === undefined) return;
        try {
          await lease.entry.handle.datasync();
        } finally {
          await this.pool.release(lease);
        }
      });
    } catch (error) {
      // Nothing was proven durable: the next flush must try these bands again.
      for (const bandIndex of bands) this.dirtyBands.add(bandIndex);
      throw error;
    }
    if (this.bandsDirDirty) {
      this.bandsDirDirty = false;
      await fsyncDirectory(this.options.bandsDir);
    }
  }

  /** Closes every pooled band file and forgets cached link counts (after snapshots link bands). */
  async closeFiles(): Promise<void> {
    await this.pool.closeAll();
  }

  private maySyncWrite(length: number): boolean {
    if (length > SYNC_WRITE_MAX_BYTES) return false;
    if (this.syncWritesThisTurn === 0) setImmediate(() => (this.syncWritesThisTurn = 0));
    return ++this.syncWritesThisTurn <= SYNC_WRITES_PER_TURN;
  }

  private async withBandLock<T>(bandIndex: number, operation: () => Promise<T>): Promise<T> {
    const stripe = this.stripes[bandIndex % LOCK_STRIPES] as Mutex;
    return stripe.runExclusive(operation);
  }

  private async notifyChange(bandIndex: number): Promise<void> {
    for (const listener of this.listeners) await listener(bandIndex);
  }

  /** Leases an existing band for modification, first breaking any sharing of its inode. */
  private async leaseForChange(bandIndex: number): Promise<BandLease | undefined> {
    const lease = await this.pool.acquire(bandIndex, false);
    if (lease === undefined || lease.entry.linkCount <= 1) return lease;
    await this.pool.release(lease);
    await this.breakSharing(bandIndex);
    return this.pool.acquire(bandIndex, false);
  }

  /** Copy-on-write: gives bands/<n> a private inode; the shared one keeps the old bytes. */
  private async breakSharing(bandIndex: number): Promise<void> {
    const source = this.pathOf(bandIndex);
    const staged = join(this.options.tmpDir, `cow-${bandFileName(bandIndex)}-${randomBytes(6).toString('hex')}`);
    debug('copy-on-write band %s', bandFileName(bandIndex));
    await copyFile(source, staged, fsConstants.COPYFILE_FICLONE);
    const handle = await open(staged, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.pool.retire(bandIndex);
    // The copy is durable before the rename; the rename itself becomes durable at the next flush
    // (until then a crash leaves the shared inode in place, which still holds the flushed bytes).
    await rename(staged, source);
    this.bandsDirDirty = true;
  }

  private async createBand(bandIndex: number): Promise<BandLease> {
    const lease = await this.pool.acquire(bandIndex, true);
    if (lease === undefined) throw new Error(`band ${bandIndex} could not be created`);
    this.present.add(bandIndex);
    this.bandsDirDirty = true;
    return lease;
  }

  private async deleteBand(bandIndex: number): Promise<void> {
    await this.pool.retire(bandIndex);
    await unlink(this.pathOf(bandIndex)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    this.present.delete(bandIndex);
    this.dirtyBands.delete(bandIndex);
    this.bandsDirDirty = true;
  }

  private async syncBand(lease: BandLease): Promise<void> {
    await this.options.mapped?.flush();
    await lease.entry.handle.datasync();
    if (this.bandsDirDirty) {
      this.bandsDirDirty = false;
      await fsyncDirectory(this.options.bandsDir);
    }
  }
}

function lastNonZeroIndex(data: Uint8Array): number {
  for (let index = data.length - 1; index >= 0; index--) if (data[index] !== 0) return index;
  return -1;
}
