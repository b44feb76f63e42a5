// Per-band I/O for a sparse bundle. Band n is the file bands/<hex n> and covers virtual bytes
// [n*bandSize, (n+1)*bandSize); a missing band, and any byte past the end of a short band, reads
// as zeros. Rules kept here:
//   - a band file appears only when non-zero data lands in it, and never grows by trailing zeros;
//   - zeroing a whole band (or everything left in it) deletes or truncates the file;
//   - a band whose inode is shared (link count > 1: snapshot or backup) is frozen: the first change
//     copies it into .sbm/tmp, fsyncs, renames it over bands/<n>, and only then modifies it;
//   - changes to one band are ordered by a lock stripe; reads take no lock.

import { link, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomTag } from '../fs/temp-name.js';
import { debugLog } from '../debug-log.js';
import { SbmError } from '../errors.js';
import { SyncIoBackoff } from './sync-io-backoff.js';
import { type Extent, isAllZero, pushExtent } from '../block-device.js';
import { bandFileName } from '../bundle/bundle-paths.js';
import { copyFileDurably, fsyncDirectory } from '../fs/atomic-write.js';
import { readFullyFd, readFullySync, writeFully, writeFullyFd, writeFullySync } from '../fs/read-fully.js';
import { allocatedRuns } from '../fs/sparse-seek.js';
import { mapLimit } from '../map-limit.js';
import { type BandLease, BandPool } from './band-pool.js';
import { StripeLock } from './stripe-lock.js';
import type { MappedBitmaps } from './mapped-bitmaps.js';

const debug = debugLog('sbm:engine');
const LOCK_STRIPES = 256;
const FLUSH_CONCURRENCY = 8;
const ZERO_WRITE_CHUNK = Buffer.alloc(1024 * 1024);
const ZERO_SCAN_STEP = 4096;
/**
 * Reads up to this size are issued synchronously while they hit the page cache (sync-io-backoff.ts):
 * the thread pool's round trip costs far more than a small pread from the cache.
 */
const SYNC_READ_MAX_BYTES = 64 * 1024;
/**
 * Writes up to this size are issued synchronously while they stay quick. Writes to one band run
 * one after another under its lock anyway, so the pool adds no parallelism there, only a round
 * trip per write, and for NBD's 256 KiB writes the hand-offs cost more CPU than the pwrites.
 */
const SYNC_WRITE_MAX_BYTES = 1024 * 1024;
/** A synchronous read slower than this missed the page cache. */
const SLOW_SYNC_READ_MS = 1;
/** A synchronous write slower than this was held back by the kernel (dirty-page throttling). */
const SLOW_SYNC_WRITE_MS = 2;
/**
 * At most this many synchronous reads and writes per event-loop turn: a caller writing in a tight
 * loop would otherwise never give timers and sockets a turn (every await would settle as a microtask).
 */
const SYNC_IO_PER_TURN = 64;
/**
 * Told before a band's content or existence changes; the change waits for the promise. A listener
 * with nothing to wait for (the change is already recorded) returns undefined.
 */
export type BandChangeListener = (bandIndex: number) => Promise<void> | undefined;

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
  protected readonly pool: BandPool;
  private readonly stripes = new StripeLock(LOCK_STRIPES);
  protected readonly dirtyBands = new Set<number>();
  /** syncBands() calls running; flush() waits for them. */
  private readonly syncsInFlight = new Set<Promise<void>>();
  private bandsDirDirty = false;
  private readonly listeners: BandChangeListener[] = [];
  private syncIoThisTurn = 0;
  /** Sends reads to the thread pool for a while after one missed the page cache. */
  private readonly readBackoff = new SyncIoBackoff(SLOW_SYNC_READ_MS);
  private readonly writeBackoff = new SyncIoBackoff(SLOW_SYNC_WRITE_MS);

  constructor(protected readonly options: BandStoreOptions) {
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
    const lease = this.pool.leaseOpen(bandIndex) ?? (await this.pool.acquire(bandIndex, false));
    if (lease === undefined) {
      target.fill(0); // deleted between the check and the open: it reads as zeros now
      return;
    }
    try {
      if (this.maySyncRead(target.length)) {
        this.readBackoff.timed(() => readFullySync(lease.entry.handle.fd, target, offsetInBand));
      } else {
        await readFullyFd(lease.entry.handle.fd, target, offsetInBand);
      }
    } finally {
      const closing = this.pool.release(lease);
      if (closing !== undefined) await closing;
    }
  }

  async write(bandIndex: number, offsetInBand: number, data: Uint8Array, durable: boolean): Promise<void> {
    await this.withBandLock(bandIndex, async () => {
      const exists = this.present.has(bandIndex);
      // One scan from the end answers both "all zero?" and "where does the data end?".
      const lastNonZero = lastNonZeroIndex(data);
      const allZero = lastNonZero < 0;
      if (!exists && allZero) return;
      const lease = exists ? await this.leaseForChange(bandIndex) : undefined;
      const fileSize = lease?.entry.sizeBytes ?? 0;
      // Never extend a band with trailing zeros: write up to the last non-zero byte, or up to the
      // current end of file when the write overlaps existing bytes.
      const writeEnd = Math.max(offsetInBand + lastNonZero + 1, Math.min(offsetInBand + data.length, fileSize));
      if (writeEnd <= offsetInBand) {
        if (lease !== undefined) await this.pool.release(lease);
        return;
      }
      const recording = this.notifyChange(bandIndex);
      if (recording !== undefined) await recording;
      if (this.options.mapped !== undefined) await this.options.mapped.markWritten(bandIndex, offsetInBand, data.length);
      const target = lease ?? (await this.createBand(bandIndex));
      // A band this write brings into existence (empty when opened) goes again if the write fails
      // (ENOSPC, EIO): the band read as zeros before, and an empty or partial file must not stay.
      const createdEmpty = lease === undefined && target.entry.sizeBytes === 0;
      try {
        const piece = data.subarray(0, writeEnd - offsetInBand);
        if (this.maySyncWrite(piece.length)) {
          this.writeBackoff.timed(() => writeFullySync(target.entry.handle.fd, piece, offsetInBand));
        } else {
          await writeFullyFd(target.entry.handle.fd, piece, offsetInBand);
        }
        target.entry.sizeBytes = Math.max(target.entry.sizeBytes, writeEnd);
        this.dirtyBands.add(bandIndex);
        if (durable) await this.syncBand(target);
      } catch (error) {
        if (createdEmpty && target.entry.sizeBytes === 0) await this.discardCreatedBand(bandIndex, target);
        throw error;
      } finally {
        const closing = this.pool.release(target);
        if (closing !== undefined) await closing;
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

  protected async rangeIsZero(bandIndex: number, offsetInBand: number, length: number): Promise<boolean> {
    const buffer = Buffer.allocUnsafe(Math.min(length, ZERO_WRITE_CHUNK.length));
    for (let done = 0; done < length; done += buffer.length) {
      const view = buffer.subarray(0, Math.min(buffer.length, length - done));
      await this.read(bandIndex, offsetInBand + done, view);
      if (!isAllZero(view)) return false;
    }
    return true;
  }

  protected async fileSize(bandIndex: number): Promise<number | undefined> {
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
    // Early syncs still running (syncBands) must end first; a failed one put its bands back in
    // dirtyBands, so they are tried again below.
    if (this.syncsInFlight.size > 0) await Promise.allSettled([...this.syncsInFlight]);
    await this.options.mapped?.flush();
    const bands = [...this.dirtyBands];
    this.dirtyBands.clear();
    await this.datasyncBands(bands);
    if (this.bandsDirDirty) {
      this.bandsDirDirty = false;
      await fsyncDirectory(this.options.bandsDir);
    }
  }

  /**
   * Makes the data of these bands durable now, ahead of the next flush() (convert syncs each band
   * it has finished while it copies the next ones, so the final flush has little left to wait
   * for). Bitmaps go first, as in flush(); the bands folder is left to flush().
   */
  async syncBands(bandIndexes: Iterable<number>): Promise<void> {
    // Out of dirtyBands and into syncsInFlight with no await between: a flush() starting at any
    // moment finds every band in one or the other.
    const bands: number[] = [];
    for (const bandIndex of bandIndexes) if (this.dirtyBands.delete(bandIndex)) bands.push(bandIndex);
    if (bands.length === 0) return;
    const syncing = this.syncMappedThenBands(bands);
    this.syncsInFlight.add(syncing);
    try {
      await syncing;
    } finally {
      this.syncsInFlight.delete(syncing);
    }
  }

  private async syncMappedThenBands(bands: readonly number[]): Promise<void> {
    try {
      await this.options.mapped?.flush();
    } catch (error) {
      for (const bandIndex of bands) this.dirtyBands.add(bandIndex);
      throw error;
    }
    await this.datasyncBands(bands);
  }

  /** fdatasyncs bands already taken out of dirtyBands; on failure they go back in. */
  private async datasyncBands(bands: readonly number[]): Promise<void> {
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
  }

  /**
   * Makes bands/<n> the inode of `sourceFile` (same filesystem): a link staged in tmp, renamed
   * over the band. The rename is made durable by the next flush().
   */
  async replaceBand(bandIndex: number, sourceFile: string): Promise<void> {
    const staged = join(this.options.tmpDir, `rev-${bandFileName(bandIndex)}-${randomTag()}`);
    await this.pool.retire(bandIndex);
    await link(sourceFile, staged);
    await rename(staged, this.pathOf(bandIndex));
    this.present.add(bandIndex);
    this.dirtyBands.delete(bandIndex);
    this.bandsDirDirty = true;
  }

  /** Deletes bands/<n> (absent already is fine); made durable by the next flush(). */
  async removeBand(bandIndex: number): Promise<void> {
    await this.deleteBand(bandIndex);
  }

  /** Closes every pooled band file and forgets cached link counts (after snapshots link bands). */
  async closeFiles(): Promise<void> {
    await this.pool.closeAll();
  }

  /** Counts a synchronous call against this event-loop turn's share; false once it is used up. */
  private takeSyncTurn(): boolean {
    if (this.syncIoThisTurn === 0) setImmediate(() => (this.syncIoThisTurn = 0));
    return ++this.syncIoThisTurn <= SYNC_IO_PER_TURN;
  }

  private maySyncRead(length: number): boolean {
    return length <= SYNC_READ_MAX_BYTES && this.readBackoff.allowsSync(performance.now()) && this.takeSyncTurn();
  }

  private maySyncWrite(length: number): boolean {
    return length <= SYNC_WRITE_MAX_BYTES && this.writeBackoff.allowsSync(performance.now()) && this.takeSyncTurn();
  }

  protected async withBandLock<T>(bandIndex: number, operation: () => Promise<T>): Promise<T> {
    return this.stripes.run(bandIndex, operation);
  }

  /** Tells the listeners in turn; undefined (nothing to await) when none has anything to wait for. */
  protected notifyChange(bandIndex: number): Promise<void> | undefined {
    for (let index = 0; index < this.listeners.length; index++) {
      const pending = (this.listeners[index] as BandChangeListener)(bandIndex);
      if (pending !== undefined) return this.notifyRest(pending, bandIndex, index + 1);
    }
    return undefined;
  }

  private async notifyRest(pending: Promise<void>, bandIndex: number, from: number): Promise<void> {
    await pending;
    for (const listener of this.listeners.slice(from)) await listener(bandIndex);
  }

  /** Leases an existing band for modification, first breaking any sharing of its inode. */
  protected async leaseForChange(bandIndex: number): Promise<BandLease | undefined> {
    const lease = this.pool.leaseOpen(bandIndex) ?? (await this.pool.acquire(bandIndex, false));
    if (lease === undefined || lease.entry.linkCount <= 1) return lease;
    await this.pool.release(lease);
    await this.breakSharing(bandIndex);
    return this.pool.acquire(bandIndex, false);
  }

  /** Copy-on-write: gives bands/<n> a private inode; the shared one keeps the old bytes. */
  private async breakSharing(bandIndex: number): Promise<void> {
    const source = this.pathOf(bandIndex);
    const staged = join(this.options.tmpDir, `cow-${bandFileName(bandIndex)}-${randomTag()}`);
    debug('copy-on-write band %s', bandFileName(bandIndex));
    await copyFileDurably(source, staged);
    await this.pool.retire(bandIndex);
    // The copy is durable before the rename; the rename itself becomes durable at the next flush
    // (until then a crash leaves the shared inode in place, which still holds the flushed bytes).
    await rename(staged, source);
    this.bandsDirDirty = true;
  }

  protected async createBand(bandIndex: number): Promise<BandLease> {
    const lease = await this.pool.acquire(bandIndex, true);
    if (lease === undefined) throw new SbmError('SBM_INTERNAL', `band ${bandFileName(bandIndex)} could not be created`, { bandIndex });
    this.present.add(bandIndex);
    this.bandsDirDirty = true;
    return lease;
  }

  /**
   * Removes the file a failed write created. The lease is retired (closed when released); a
   * failure to unlink is left for the caller's error, which matters more.
   */
  protected async discardCreatedBand(bandIndex: number, lease: BandLease): Promise<void> {
    await this.pool.retire(bandIndex);
    if (lease.entry.retired) {
      await unlink(this.pathOf(bandIndex)).catch(() => undefined); // the write's own error is reported instead
      this.present.delete(bandIndex);
      this.dirtyBands.delete(bandIndex);
      this.bandsDirDirty = true;
    }
  }

  protected async deleteBand(bandIndex: number): Promise<void> {
    await this.pool.retire(bandIndex);
    await unlink(this.pathOf(bandIndex)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    this.present.delete(bandIndex);
    this.dirtyBands.delete(bandIndex);
    this.bandsDirDirty = true;
  }

  protected async syncBand(lease: BandLease): Promise<void> {
    await this.options.mapped?.flush();
    await lease.entry.handle.datasync();
    if (this.bandsDirDirty) {
      this.bandsDirDirty = false;
      await fsyncDirectory(this.options.bandsDir);
    }
  }
}

/** Index of the last non-zero byte, or -1 when all are zero; whole zero pages are skipped natively. */
function lastNonZeroIndex(data: Uint8Array): number {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let end = view.length; end > 0; end -= ZERO_SCAN_STEP) {
    const start = Math.max(0, end - ZERO_SCAN_STEP);
    if (view.compare(ZERO_WRITE_CHUNK, 0, end - start, start, end) === 0) continue;
    for (let index = end - 1; index >= start; index--) if (view[index] !== 0) return index;
  }
  return -1;
}
