// SparseBundle: an Apple sparse bundle folder as a BlockDevice. Opening reads Info.plist (falling
// back to Info.bckup), takes the flock on `lock`, and lists bands/ once (at open, or at first need
// with deferBandListing); from then on every request is split at band edges and handed to the
// BandStore. Block-device work only: tokens, change reports, snapshots and resizing are
// operations of a BundleSession (lib/session/) over the open bundle; it reaches the band set
// through the quiet-point methods here (withQuiescedIo, linkBandsInto, replaceBand, removeBand,
// setSizeBytes), never through the store.
//
//   virtual disk  |---- band 0 ----|---- band 1 ----|-- ... --|- last band -|
//   bundle        bands/0          bands/1                    bands/<hex>   (missing = zeros)

import { lstat, mkdir, rm } from 'node:fs/promises';
import { type BlockDevice, type Extent, type WriteOptions, checkRange } from '../block-device.js';
import { SbmError, fromSystemError, isSbmError } from '../errors.js';
import { BundleLock } from '../bundle/bundle-lock.js';
import { type BundlePaths, bundlePaths } from '../bundle/bundle-paths.js';
import { DEFAULT_BAND_SIZE_BYTES } from '../bundle/constants.js';
import {
  assertBundleDirectory,
  assertRealFolders,
  clearStaging,
  deferredBandListing,
  isDirectory,
  listBands,
  readBundleInfo,
  warnOnBandCount,
  writeEmptyBundle,
  writeInfoFiles,
} from '../bundle/bundle-files.js';
import { type BundleInfo, renderInfoPlist, validateGeometry } from '../bundle/info-plist.js';
import { LazyBandSet } from '../bundle/lazy-band-set.js';
import { newBundleToken, openBundleEncryption } from '../bundle/bundle-encryption.js';
import { assertNotBackup } from '../fs/backup-guard.js';
import { isNoSpace, noSpaceOrSystemError } from '../fs/no-space.js';
import { WarningList } from '../warnings.js';
import { BandStore } from './band-store.js';
import { EncryptedBandStore } from './encrypted-band-store.js';
import { IoGate } from './io-gate.js';
import type { ChangeTracker } from '../tracking/change-tracker.js';
import { openChangeTracker } from '../tracking/open-tracker.js';
import type { TrackerHost } from '../tracking/tracker-types.js';
import { linkBandFiles } from './band-links.js';
import { MappedBitmaps } from './mapped-bitmaps.js';
import type { CreateBundleOptions, OpenBundleOptions } from './bundle-options.js';

export type { CreateBundleOptions, OpenBundleOptions } from './bundle-options.js';

export class SparseBundle implements BlockDevice {
  readonly formatName = 'sparsebundle';
  readonly minimumBlockSize = 1;
  readonly preferredBlockSize = 4096;
  private readonly gate = new IoGate();
  private closing: Promise<void> | undefined;
  private tracker: ChangeTracker | undefined;
  /** True while withQuiescedIo runs its operation: the band-set methods require it. */
  private quiesced = false;

  private constructor(
    readonly path: string,
    readonly paths: BundlePaths,
    private info: BundleInfo,
    readonly readOnly: boolean,
    private readonly store: BandStore,
    private readonly lock: BundleLock,
    readonly hasMappedDir: boolean,
    /** 'AES-128' or 'AES-256' for an encrypted bundle (its bands hold ciphertext). */
    readonly encryption: string | undefined,
  ) {}

  get sizeBytes(): number {
    return this.info.sizeBytes;
  }

  get bandSizeBytes(): number {
    return this.info.bandSizeBytes;
  }

  get bandCount(): number {
    return Math.ceil(this.info.sizeBytes / this.info.bandSizeBytes);
  }

  get plistVersion(): number {
    return this.info.version;
  }

  /** Band indexes whose files exist, in numeric order. */
  bandsPresent(): number[] {
    return [...this.store.present].sort((a, b) => a - b);
  }

  /** Path of a band's file (it may not exist). */
  bandPath(bandIndex: number): string {
    return this.store.pathOf(bandIndex);
  }

  /** Creates a new, empty bundle at `path` (which must not exist) and opens it read-write. */
  static async create(path: string, options: CreateBundleOptions): Promise<SparseBundle> {
    const bandSizeBytes = options.bandSizeBytes ?? DEFAULT_BAND_SIZE_BYTES;
    validateGeometry(bandSizeBytes, options.sizeBytes);
    const onWarning = options.onWarning ?? new WarningList().sink;
    warnOnBandCount(bandSizeBytes, options.sizeBytes, onWarning);
    const paths = bundlePaths(path);
    await assertNotBackup(path, 'create a bundle inside a backup');
    try {
      await mkdir(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new SbmError('SBM_EXISTS', `${path} already exists`, { path });
      throw noSpaceOrSystemError(error, 'cannot create bundle', path);
    }
    const plistBytes = renderInfoPlist({ bandSizeBytes, sizeBytes: options.sizeBytes, version: 1 });
    // The folder is ours (mkdir is exclusive): a failure anywhere below removes it, so a full
    // filesystem leaves nothing that would block a retry.
    try {
      const { encryption } = options;
      await writeEmptyBundle(paths, plistBytes, encryption === undefined ? undefined : await newBundleToken(encryption));
      const password = encryption === undefined ? undefined : async () => encryption.password;
      return await SparseBundle.open(path, { onWarning, untracked: options.untracked, password });
    } catch (error) {
      await rm(path, { recursive: true, force: true }).catch(() => undefined); // the failure itself matters more
      throw isSbmError(error) && !isNoSpace(error) ? error : noSpaceOrSystemError(error, 'cannot create bundle', path);
    }
  }

  static async open(path: string, options: OpenBundleOptions = {}): Promise<SparseBundle> {
    const readOnly = options.readOnly ?? false;
    const onWarning = options.onWarning ?? new WarningList().sink;
    const paths = bundlePaths(path);
    await assertBundleDirectory(paths);
    await assertRealFolders(paths);
    const info = await readBundleInfo(paths, onWarning);
    validateGeometry(info.bandSizeBytes, info.sizeBytes);
    const cipher = await openBundleEncryption(paths, options.password, onWarning);
    // Before anything is written (the state folder, the lock's owner file, tracking).
    if (!readOnly && options.allowBackupWrites !== true) await assertNotBackup(path, 'open a backup read-write');
    if (!readOnly)
      await mkdir(paths.tmp, { recursive: true }).catch((error) => {
        throw fromSystemError(error, 'cannot create sbm state folder', paths.sbm);
      });
    if (options.forceShare === true && !readOnly) {
      throw new SbmError('SBM_INVALID_ARGUMENT', 'forceShare is only allowed with readOnly');
    }
    const lock =
      options.forceShare === true ? BundleLock.none() : await BundleLock.acquire(paths, readOnly ? 'shared' : 'exclusive', onWarning);
    try {
      if (!readOnly) await clearStaging(paths);
      const presentBands = await (options.deferBandListing === true ? deferredBandListing : listBands)(paths, info, readOnly, onWarning);
      const hasMappedDir = await isDirectory(paths.mapped);
      const mapped = hasMappedDir && !readOnly ? new MappedBitmaps(paths.mapped, info.bandSizeBytes) : undefined;
      const storeOptions = {
        bandsDir: paths.bands,
        tmpDir: paths.tmp,
        bandSizeBytes: info.bandSizeBytes,
        writable: !readOnly,
        presentBands,
        mapped,
        maxOpenBands: options.maxOpenBands,
      };
      // The cipher sits at band I/O: files hold ciphertext, everything above sees plaintext.
      const store = cipher === undefined ? new BandStore(storeOptions) : new EncryptedBandStore(storeOptions, cipher);
      const encryption = cipher === undefined ? undefined : `AES-${cipher.keyBits}`;
      const bundle = new SparseBundle(path, paths, info, readOnly, store, lock, hasMappedDir, encryption);
      if (options.untracked !== true) {
        const tracker = await openChangeTracker({ host: bundle.trackerHost(), readOnly, onWarning });
        bundle.tracker = tracker;
        // Only the first change of a band per generation waits for its durable record.
        if (!readOnly)
          store.onBandChange((bandIndex) => (tracker.isDurablyRecorded(bandIndex) ? undefined : tracker.beforeChange(bandIndex)));
      }
      return bundle;
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    await this.io(offset, target.length, false, async () => {
      for (const segment of this.segments(offset, target.length)) {
        const view = target.subarray(segment.bufferOffset, segment.bufferOffset + segment.length);
        await this.store.read(segment.bandIndex, segment.offsetInBand, view);
      }
    });
  }

  async write(offset: number, data: Uint8Array, options: WriteOptions = {}): Promise<void> {
    await this.io(offset, data.length, true, async () => {
      for (const segment of this.segments(offset, data.length)) {
        const piece = data.subarray(segment.bufferOffset, segment.bufferOffset + segment.length);
        await this.store.write(segment.bandIndex, segment.offsetInBand, piece, options.fua === true);
      }
    });
  }

  async writeZeroes(offset: number, length: number, options: WriteOptions = {}): Promise<void> {
    await this.trim(offset, length);
    if (options.fua === true) await this.flush();
  }

  /** Deletes bands the range covers whole, and zeroes or truncates the partial ones. */
  async trim(offset: number, length: number): Promise<void> {
    await this.io(offset, length, true, async () => {
      for (const segment of this.segments(offset, length)) {
        await this.store.zero(segment.bandIndex, segment.offsetInBand, segment.length, this.bandLength(segment.bandIndex));
      }
    });
  }

  async flush(): Promise<void> {
    this.assertOpen();
    if (this.readOnly) return;
    await this.gate.io(() => this.store.flush());
  }

  /**
   * Makes the data of the bands overlapping [offset, offset+length) durable now, ahead of flush()
   * (which still has to run: it makes the names of new bands durable). Convert calls it for each
   * band it has finished, so the syncs overlap the copy.
   */
  async flushBands(offset: number, length: number): Promise<void> {
    this.assertOpen();
    if (this.readOnly || length === 0) return;
    checkRange(this.sizeBytes, offset, length);
    const bands: number[] = [];
    for (let bandIndex = Math.floor(offset / this.bandSizeBytes); bandIndex * this.bandSizeBytes < offset + length; bandIndex++)
      bands.push(bandIndex);
    await this.gate.io(() => this.store.syncBands(bands));
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    const list: Extent[] = [];
    await this.io(offset, length, false, async () => {
      for (const segment of this.segments(offset, length)) {
        const bandStart = segment.bandIndex * this.bandSizeBytes;
        for (const extent of await this.store.extents(segment.bandIndex, segment.offsetInBand, segment.length, bandStart)) {
          const last = list[list.length - 1];
          if (last !== undefined && last.kind === extent.kind && last.offset + last.length === extent.offset) {
            list[list.length - 1] = { ...last, length: last.length + extent.length };
          } else {
            list.push(extent);
          }
        }
      }
    });
    return list;
  }

  /**
   * The geometry change under a resize (BundleSession.resize): sets the disk size, deleting or
   * cutting the bands past a smaller end, then rewrites Info.bckup and Info.plist.
   */
  async setSizeBytes(newSizeBytes: number): Promise<void> {
    this.assertOpen();
    if (this.readOnly) throw new SbmError('SBM_READ_ONLY', `bundle ${this.path} is open read-only`);
    validateGeometry(this.info.bandSizeBytes, newSizeBytes);
    await this.gate.exclusive(async () => {
      if (newSizeBytes < this.info.sizeBytes) {
        const newBandCount = Math.ceil(newSizeBytes / this.bandSizeBytes);
        for (const bandIndex of this.bandsPresent()) {
          if (bandIndex >= newBandCount) await this.store.zero(bandIndex, 0, this.bandSizeBytes, this.bandSizeBytes);
        }
        const lastBandLength = newSizeBytes - (newBandCount - 1) * this.bandSizeBytes;
        if (lastBandLength < this.bandSizeBytes) await this.store.truncate(newBandCount - 1, lastBandLength);
      }
      await this.store.flush();
      const info: BundleInfo = { ...this.info, sizeBytes: newSizeBytes };
      await writeInfoFiles(this.paths, info);
      this.info = info;
    });
  }

  /** Facts for `sbm info`. Stats every present band, so cost grows with the band count. */
  async details(): Promise<Record<string, unknown>> {
    this.assertOpen();
    let allocatedBytes = 0;
    let bandFileBytes = 0;
    for (const bandIndex of this.bandsPresent()) {
      // lstat: a symlinked band counts for what it is here, not for the file it points at.
      const info = await lstat(this.bandPath(bandIndex)).catch(() => undefined);
      if (info === undefined || !info.isFile()) continue;
      allocatedBytes += info.blocks * 512;
      bandFileBytes += info.size;
    }
    return {
      bandSizeBytes: this.bandSizeBytes,
      bandCount: this.bandCount,
      bandsPresent: this.store.present.size,
      bandFileBytes,
      allocatedBytes,
      plistVersion: this.info.version,
      ...(this.info.uuid === undefined ? {} : { uuid: this.info.uuid }),
      mappedBitmaps: this.hasMappedDir,
      ...(this.encryption === undefined ? {} : { encryption: this.encryption }),
    };
  }

  /** The change tracker (records, checkpoints, token checks) the session asks at quiet points. */
  get changeTracker(): ChangeTracker {
    if (this.tracker === undefined) {
      throw new SbmError('SBM_UNSUPPORTED', `bundle ${this.path} was opened without change tracking (it is still being built)`);
    }
    return this.tracker;
  }

  /**
   * Runs `operation` with in-flight I/O drained and new I/O held back, after flushing: the point in
   * time for tokens, snapshots and reverts. Inside it, the band-set methods below may be called
   * (not the bundle's I/O methods: they would wait for the gate); what they changed is flushed
   * before the gate opens again.
   */
  async withQuiescedIo<T>(operation: () => Promise<T>): Promise<T> {
    this.assertOpen();
    return this.gate.exclusive(async () => {
      this.assertOpen();
      if (!this.readOnly) await this.store.flush();
      this.quiesced = true;
      try {
        const result = await operation();
        if (!this.readOnly) await this.store.flush();
        return result;
      } finally {
        this.quiesced = false;
      }
    });
  }

  /**
   * Hard-links every present band into `folder` as bands are named there (a snapshot's bands/);
   * refuses a band that is not a regular file. Returns the bands linked. Quiet point only.
   */
  async linkBandsInto(folder: string): Promise<number[]> {
    this.assertQuiesced('linkBandsInto');
    const bands = this.bandsPresent();
    await linkBandFiles(bands, (bandIndex) => this.store.pathOf(bandIndex), folder);
    await this.store.closeFiles(); // pooled handles cache link counts that are now stale
    return bands;
  }

  /** Makes band `bandIndex` the inode of `sourceFile` (same filesystem, e.g. a snapshot's band). Quiet point only. */
  async replaceBand(bandIndex: number, sourceFile: string): Promise<void> {
    this.assertQuiesced('replaceBand');
    await this.store.replaceBand(bandIndex, sourceFile);
  }

  /** Deletes band `bandIndex`'s file, if any. Quiet point only. */
  async removeBand(bandIndex: number): Promise<void> {
    this.assertQuiesced('removeBand');
    await this.store.removeBand(bandIndex);
  }

  /** Re-reads link counts at next use (after links to the bands were added or removed elsewhere). Quiet point only. */
  async forgetLinkCounts(): Promise<void> {
    this.assertQuiesced('forgetLinkCounts');
    await this.store.closeFiles();
  }

  close(): Promise<void> {
    this.closing ??= this.gate.exclusive(async () => {
      try {
        if (!this.readOnly) await this.store.flush();
        await this.tracker?.close();
        await this.store.closeFiles();
      } finally {
        await this.lock.release();
      }
    });
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private trackerHost(): TrackerHost {
    const store = this.store;
    const bundle = this;
    return {
      paths: this.paths,
      get bandSizeBytes() {
        return bundle.bandSizeBytes;
      },
      get sizeBytes() {
        return bundle.sizeBytes;
      },
      get bandCount() {
        return bundle.bandCount;
      },
      bandPath: (bandIndex) => store.pathOf(bandIndex),
      presentBandCount: () => (store.present instanceof LazyBandSet ? store.present.sizeIfListed() : store.present.size),
    };
  }

  private bandLength(bandIndex: number): number {
    return Math.min(this.bandSizeBytes, this.sizeBytes - bandIndex * this.bandSizeBytes);
  }

  private *segments(offset: number, length: number) {
    let position = offset;
    const end = offset + length;
    while (position < end) {
      const bandIndex = Math.floor(position / this.bandSizeBytes);
      const offsetInBand = position - bandIndex * this.bandSizeBytes;
      const segmentLength = Math.min(end - position, this.bandSizeBytes - offsetInBand);
      yield { bandIndex, offsetInBand, length: segmentLength, bufferOffset: position - offset };
      position += segmentLength;
    }
  }

  private async io(offset: number, length: number, writes: boolean, operation: () => Promise<void>): Promise<void> {
    this.assertOpen();
    if (writes && this.readOnly) throw new SbmError('SBM_READ_ONLY', `bundle ${this.path} is open read-only`);
    checkRange(this.sizeBytes, offset, length);
    await this.gate.io(async () => {
      this.assertOpen();
      try {
        await operation();
      } catch (error) {
        throw isSbmError(error) ? error : fromSystemError(error, writes ? 'write failed in' : 'read failed in', this.path);
      }
    });
  }

  private assertQuiesced(method: string): void {
    if (!this.quiesced) throw new SbmError('SBM_INTERNAL', `SparseBundle.${method} runs only inside withQuiescedIo`);
  }

  private assertOpen(): void {
    if (this.closing !== undefined) throw new SbmError('SBM_CLOSED', `bundle ${this.path} is closed`);
  }
}
