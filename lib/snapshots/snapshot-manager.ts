// Copy-on-write snapshots: .sbm/snapshots/<name>.sparsebundle is a complete sparse bundle
// (Info.plist, Info.bckup, token, lock, bands/ as hard links of the live bands, a copy of
// mapped/ if any, and .sbm/snapshot.json) that sbm, hdiutil and sparsebundlefs can open read-only.
// No band is copied when a snapshot is taken; the engine copies a shared band (link count > 1)
// before its first later change, so a snapshot never changes.
//
// create (I/O drained and flushed first, so the snapshot is one point in time):
//   .sbm/tmp/snap-X.sparsebundle/  <- plists, token, lock, mapped/ copies, bands/<n> links,
//                                     .sbm/snapshot.json (token); fsync files and folders
//   rename -> .sbm/snapshots/<name>.sparsebundle; fsync .sbm/snapshots and .sbm/tmp
//   (a crash before the rename leaves only staging, which the next read-write open removes)
// delete:
//   rename .sbm/snapshots/<name>.sparsebundle -> .sbm/tmp/del-X; fsync both; rm -r del-X
//   (unlinking frees only inodes nobody else links: live bands, other snapshots, backups keep theirs)
// revert (tracked: every band that differs gets a change record before it is replaced):
//   for each band n in live ∪ snapshot whose inode differs from the snapshot's:
//     record n -> link snapshot band into .sbm/tmp -> rename over bands/n   (or unlink bands/n)
//   fsync bands/; interrupted? run revert again: it is idempotent.

import { readTokenBytes } from '../bundle/bundle-encryption.js';
import { lstatSync, statSync } from 'node:fs';
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomTag } from '../fs/temp-name.js';
import type { BlockDevice } from '../block-device.js';
import { BundleLock } from '../bundle/bundle-lock.js';
import { bandCountOf, listBandFolder } from '../bundle/band-listing.js';
import { type BundlePaths, bandFileName, bundlePaths } from '../bundle/bundle-paths.js';
import { parseInfoPlistAsync } from '../bundle/info-plist.js';
import { readPlistBytes } from '../bundle/bundle-files.js';
import { assertRegularSync, directoryKind, fileKind, isNotRegularFile, readSmallFile } from '../fs/safe-open.js';
import { assertRegularBand } from '../engine/band-links.js';
import { SparseBundle } from '../engine/sparse-bundle.js';
import { SbmError, fromSystemError, isSbmError } from '../errors.js';
import { copyFileDurably, fsyncDirectory, writeNewFileDurably } from '../fs/atomic-write.js';
import { stampPath } from '../tracking/stat-cache.js';
import { inSyncRuns } from '../sync-runs.js';

export const SNAPSHOTS_DIR = 'snapshots';
export const SNAPSHOT_SUFFIX = '.sparsebundle';
export const SNAPSHOT_META_FILE = 'snapshot.json';
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
/** snapshot.json is a few hundred bytes; anything far larger is not one. */
const SNAPSHOT_META_MAX_BYTES = 64 * 1024;

export interface SnapshotMeta {
  readonly name: string;
  readonly createdAt: string;
  /** Token of the point the snapshot holds: `changed-bands --since <name>` uses it. */
  readonly token: string;
  readonly sizeBytes: number;
  readonly bandSizeBytes: number;
}

export interface SnapshotInfo extends SnapshotMeta {
  readonly path: string;
  readonly bandCount: number;
  /** Allocated bytes of bands only this snapshot links: what deleting it frees. */
  readonly uniqueBytes: number;
  /** Allocated bytes of all its bands. */
  readonly allocatedBytes: number;
}

export class SnapshotManager {
  constructor(private readonly bundle: SparseBundle) {}

  get directory(): string {
    return join(this.bundle.paths.sbm, SNAPSHOTS_DIR);
  }

  pathOf(name: string): string {
    assertName(name);
    return join(this.directory, `${name}${SNAPSHOT_SUFFIX}`);
  }

  async create(name: string): Promise<SnapshotInfo> {
    const target = this.pathOf(name);
    this.assertWritable();
    if (await exists(target)) throw new SbmError('SBM_EXISTS', `snapshot "${name}" already exists (${target})`, { name });
    await mkdir(this.directory, { recursive: true });
    const { paths } = this.bundle;
    await this.quiesced(`cannot create snapshot "${name}" of`, async () => {
      const stage = join(paths.tmp, `snap-${randomTag()}${SNAPSHOT_SUFFIX}`);
      const stagePaths = bundlePaths(stage);
      await mkdir(stage); // fails rather than share a folder with another stage
      await mkdir(stagePaths.bands);
      await mkdir(stagePaths.sbm);
      for (const file of [paths.infoBackup, paths.infoPlist]) await copyRegularFile(file, join(stage, file.slice(paths.root.length + 1)));
      // An encrypted bundle's token goes with its ciphertext bands: the snapshot opens with the same password.
      await writeNewFileDurably(stagePaths.token, await readTokenBytes(paths));
      await writeNewFileDurably(stagePaths.lock, Buffer.alloc(0));
      if (this.bundle.hasMappedDir) await copyFolder(paths.mapped, stagePaths.mapped);
      // Linking changes each band's ctime: check first that none was edited behind sbm's back.
      await this.bundle.changeTracker.auditBeforeRestamp(this.bundle.bandsPresent());
      const bands = await this.bundle.linkBandsInto(stagePaths.bands);
      const token = await this.bundle.changeTracker.checkpoint(bands);
      const meta: SnapshotMeta = {
        name,
        createdAt: new Date().toISOString(),
        token,
        sizeBytes: this.bundle.sizeBytes,
        bandSizeBytes: this.bundle.bandSizeBytes,
      };
      await writeNewFileDurably(join(stagePaths.sbm, SNAPSHOT_META_FILE), Buffer.from(`${JSON.stringify(meta, null, 2)}\n`));
      for (const folder of [stagePaths.bands, stagePaths.sbm, stage]) await fsyncDirectory(folder);
      await rename(stage, target);
      await fsyncDirectory(this.directory);
      await fsyncDirectory(paths.tmp);
      await fsyncDirectory(paths.sbm);
    });
    return this.describe(name);
  }

  async list(): Promise<SnapshotInfo[]> {
    const names = await readdir(this.directory).catch(() => [] as string[]);
    const list: SnapshotInfo[] = [];
    for (const entry of names.sort()) {
      if (!entry.endsWith(SNAPSHOT_SUFFIX)) continue;
      const name = entry.slice(0, -SNAPSHOT_SUFFIX.length);
      if (!NAME_PATTERN.test(name)) continue;
      // A snapshot deleted while we look (another process, or the mount's cleanup) is skipped.
      const info = await this.describe(name).catch((error: unknown) => {
        if (isSbmError(error, 'SBM_NOT_FOUND') || (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      });
      if (info !== undefined) list.push(info);
    }
    return list.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.name.localeCompare(b.name));
  }

  async meta(name: string): Promise<SnapshotMeta> {
    const path = this.pathOf(name);
    // A snapshot is a real folder of the bundle: through a symlink, sbm would read (and revert
    // to) a bundle that lies elsewhere.
    const folder = await lstat(path).catch(() => undefined);
    if (folder !== undefined && !folder.isDirectory()) {
      throw new SbmError('SBM_CORRUPT', `${path} is a ${fileKind(folder)}, not a folder; sbm will not use it as a snapshot`, { name });
    }
    let text: string;
    try {
      const read = await readSmallFile(join(path, '.sbm', SNAPSHOT_META_FILE), SNAPSHOT_META_MAX_BYTES);
      if (read.tooLong)
        throw new SbmError('SBM_CORRUPT', `${path}/.sbm/${SNAPSHOT_META_FILE} is ${read.sizeBytes} bytes, too long for snapshot metadata`, {
          name,
        });
      text = read.bytes.toString('utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new SbmError('SBM_NOT_FOUND', `no snapshot named "${name}" in ${this.bundle.path}`, { name });
      if (isNotRegularFile(error)) throw new SbmError('SBM_CORRUPT', `${error.path} is a ${error.kind}, not a regular file`, { name });
      throw error;
    }
    try {
      return JSON.parse(text) as SnapshotMeta;
    } catch {
      throw new SbmError('SBM_CORRUPT', `${path}/.sbm/${SNAPSHOT_META_FILE} is not valid JSON`, { name });
    }
  }

  /** Opens the snapshot as a read-only BlockDevice (a SparseBundle). */
  async open(name: string): Promise<BlockDevice> {
    await this.meta(name);
    return SparseBundle.open(this.pathOf(name), { readOnly: true });
  }

  async delete(name: string): Promise<void> {
    const path = this.pathOf(name);
    this.assertWritable();
    await this.meta(name);
    const { paths } = this.bundle;
    // A reader of the snapshot (sbm mount --snapshot, an export) holds its shared lock: deleting
    // the files under it would pull the disk out from under its clients.
    const lock = await BundleLock.acquire(bundlePaths(path), 'exclusive', () => undefined, { recordOwner: false }).catch(
      (error: unknown) => {
        if (isSbmError(error, 'SBM_LOCKED')) {
          throw new SbmError(
            'SBM_LOCKED',
            `snapshot "${name}" of ${this.bundle.path} is in use (served by sbm mount --snapshot, or being read); stop that first`,
            { name },
          );
        }
        throw error;
      },
    );
    try {
      await this.deleteLocked(name, path, paths);
    } finally {
      await lock.release();
    }
  }

  private async deleteLocked(name: string, path: string, paths: BundlePaths): Promise<void> {
    await this.quiesced(`cannot delete snapshot "${name}" of`, async () => {
      const shared = await sharedBands(this.bundle, join(path, 'bands'));
      await this.bundle.changeTracker.auditBeforeRestamp(shared);
      const doomed = join(paths.tmp, `del-${randomTag()}`);
      await rename(path, doomed);
      await fsyncDirectory(this.directory);
      await fsyncDirectory(paths.tmp);
      await rm(doomed, { recursive: true, force: true });
      await this.bundle.forgetLinkCounts();
      await this.bundle.changeTracker.checkpoint(shared);
    });
  }

  /** Makes the live disk equal to the snapshot; every band replaced is recorded as a change. */
  async revert(
    name: string,
    onProgress?: (progress: { bandsDone: number; bandsTotal: number }) => void,
  ): Promise<{ bandsChanged: number }> {
    this.assertWritable();
    const meta = await this.meta(name);
    const snapshotPaths = bundlePaths(this.pathOf(name));
    const bandsKind = await directoryKind(snapshotPaths.bands);
    if (bandsKind !== undefined && bandsKind !== 'directory') {
      throw new SbmError(
        'SBM_BAD_BAND',
        `${snapshotPaths.bands} is a ${bandsKind}, not a folder; sbm will not revert to band files outside the snapshot`,
        { name },
      );
    }
    const info = await parseInfoPlistAsync(await readPlistBytes(snapshotPaths.infoPlist, 'Info.plist'), 'Info.plist');
    if (info.bandSizeBytes !== this.bundle.bandSizeBytes) {
      throw new SbmError(
        'SBM_UNSUPPORTED',
        `snapshot "${meta.name}" has band size ${info.bandSizeBytes}, the bundle ${this.bundle.bandSizeBytes}`,
      );
    }
    if (info.sizeBytes !== this.bundle.sizeBytes) await this.bundle.setSizeBytes(info.sizeBytes);
    const tracker = this.bundle.changeTracker;
    return this.quiesced(`cannot revert to snapshot "${name}":`, async () => {
      const snapshotBands = await listBandIndexes(snapshotPaths.bands, bandCountOf(info.sizeBytes, info.bandSizeBytes));
      const all = [...new Set([...this.bundle.bandsPresent(), ...snapshotBands])].sort((a, b) => a - b);
      let bandsChanged = 0;
      let bandsDone = 0;
      for (const bandIndex of all) {
        onProgress?.({ bandsDone: bandsDone++, bandsTotal: all.length });
        const live = await stampPath(this.bundle.bandPath(bandIndex));
        const frozenPath = join(snapshotPaths.bands, bandFileName(bandIndex));
        const frozen = await stampPath(frozenPath);
        if (live?.ino === frozen?.ino) continue; // same inode (or both absent): already equal
        await tracker.beforeChange(bandIndex);
        if (frozen === undefined) {
          await this.bundle.removeBand(bandIndex);
        } else {
          assertRegularBand(frozenPath, bandIndex);
          await this.bundle.replaceBand(bandIndex, frozenPath);
        }
        bandsChanged++;
      }
      onProgress?.({ bandsDone: all.length, bandsTotal: all.length });
      // The replaced bands' renames are made durable by withQuiescedIo's flush before it returns.
      return { bandsChanged };
    });
  }

  private async describe(name: string): Promise<SnapshotInfo> {
    const meta = await this.meta(name);
    const path = this.pathOf(name);
    const bandsDir = join(path, 'bands');
    let uniqueBytes = 0;
    let allocatedBytes = 0;
    const bands = await listBandIndexes(bandsDir, bandCountOf(meta.sizeBytes, meta.bandSizeBytes));
    await inSyncRuns(bands, (bandIndex) => {
      const info = lstatSync(join(bandsDir, bandFileName(bandIndex)));
      allocatedBytes += info.blocks * 512;
      if (info.nlink === 1) uniqueBytes += info.blocks * 512;
    });
    return { ...meta, name, path, bandCount: bands.length, uniqueBytes, allocatedBytes };
  }

  /** Runs with I/O drained; system errors become SbmErrors naming the bundle. */
  private async quiesced<T>(doing: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await this.bundle.withQuiescedIo(operation);
    } catch (error) {
      throw fromSystemError(error, doing, this.bundle.path);
    }
  }

  private assertWritable(): void {
    if (this.bundle.readOnly) throw new SbmError('SBM_READ_ONLY', `bundle ${this.bundle.path} is open read-only`);
  }
}

function assertName(name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new SbmError(
      'SBM_INVALID_ARGUMENT',
      `snapshot name "${name}" must be 1-100 letters, digits, ".", "_" or "-", starting with a letter or digit`,
      {
        name,
      },
    );
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** A snapshot's bands: sbm linked only listed bands there, so a stray name is not sbm's and is left out silently. */
async function listBandIndexes(bandsDir: string, bandCount: number): Promise<number[]> {
  return (await listBandFolder(bandsDir, bandCount, () => undefined).catch(() => undefined)) ?? [];
}

/** Live bands that are the same inode as the snapshot's band of the same index. */
async function sharedBands(bundle: SparseBundle, snapshotBandsDir: string): Promise<number[]> {
  const shared: number[] = [];
  const inode = (path: string) => statSync(path, { bigint: true, throwIfNoEntry: false })?.ino;
  await inSyncRuns(await listBandIndexes(snapshotBandsDir, bundle.bandCount), (bandIndex) => {
    const live = inode(bundle.bandPath(bandIndex));
    if (live !== undefined && live === inode(join(snapshotBandsDir, bandFileName(bandIndex)))) shared.push(bandIndex);
  });
  return shared.sort((a, b) => a - b);
}

async function copyFolder(source: string, target: string): Promise<void> {
  await mkdir(target);
  for (const name of await readdir(source)) await copyRegularFile(join(source, name), join(target, name));
  await fsyncDirectory(target);
}

/** copyFileDurably of a file inside the bundle, refused when it is not a regular file (copyFile follows symlinks). */
async function copyRegularFile(from: string, to: string): Promise<void> {
  try {
    assertRegularSync(from);
  } catch (error) {
    if (isNotRegularFile(error))
      throw new SbmError('SBM_CORRUPT', `${from} is a ${error.kind}, not a regular file; no snapshot was taken`, { path: from });
    throw error;
  }
  await copyFileDurably(from, to);
}
