// sbm backup: one complete, openable bundle per run, copying only the bands that changed since the
// previous backup and hard-linking every other band to it.
//
//   1. lock the set; discard *.inProgress left by interrupted runs
//   2. freeze the source (a snapshot: writes arriving meanwhile do not reach it)
//   3. ask the tracker which bands changed since the previous backup's token;
//      refused (foreign / reset / stale token) -> hash every band, compare with the manifest
//   4. build <stem>.inProgress/: copy changed bands (hashing them), link the rest, copy the plists
//      and token, write .sbm/manifest.json; fsync every file written and every folder
//   5. rename <stem>.inProgress -> <stem>.sparsebundle, fsync the set folder
//   6. release the frozen point; on any failure remove <stem>.inProgress (no other backup is touched)

import { copyFile, link, mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { bandFileName, bundlePaths, parseBandName } from '../bundle/bundle-paths.js';
import { SbmError, fromSystemError, isSbmError } from '../errors.js';
import { readBundleInfo } from '../bundle/bundle-files.js';
import { fsyncDirectory, writeNewFileDurably } from '../fs/atomic-write.js';
import { writeFully } from '../fs/read-fully.js';
import { mapLimit } from '../map-limit.js';
import type { WarningSink } from '../warnings.js';
import { type BackupManifest, type BackupMode, type BandRecord, MANIFEST_RELATIVE_PATH, MANIFEST_VERSION, readManifest } from './backup-manifest.js';
import { BACKUP_SUFFIX, IN_PROGRESS_SUFFIX, discardInterrupted, freeBackupStem, listBackups, lockBackupSet } from './backup-set.js';

/** A frozen, complete bundle folder (bands may be hard links into the live bundle). */
export interface FrozenPoint {
  readonly bundlePath: string;
  readonly takenAt: Date;
  /** Tracker token of the point; the next backup asks for changes since it. */
  readonly token?: string;
  release(): Promise<void>;
}

export type ChangedAnswer = { readonly kind: 'changed'; readonly bands: ReadonlySet<number> } | { readonly kind: 'refused'; readonly reason: string };

/** What a backup needs of the disk it protects. */
export interface BackupSource {
  readonly path: string;
  /** Name of the backup set folder under the destination. */
  readonly name: string;
  freeze(): Promise<FrozenPoint>;
  /** Bands changed since `token` (a superset is fine), or why the tracker cannot say. */
  changedSince(token: string): Promise<ChangedAnswer>;
}

export interface BackupOptions {
  /** Copy unchanged bands instead of linking them (destinations without hard links). */
  readonly copyMode?: boolean;
  readonly onWarning?: WarningSink;
  readonly onProgress?: (progress: { bandsDone: number; bandsTotal: number }) => void;
}

export interface BackupResult {
  readonly path: string;
  readonly name: string;
  readonly mode: BackupMode;
  readonly fallbackReason?: string;
  readonly bandsCopied: number;
  readonly bandsLinked: number;
  readonly bytesWritten: number;
  readonly seconds: number;
}

const COPY_CHUNK_BYTES = 1024 * 1024;

export async function createBackup(source: BackupSource, destination: string, options: BackupOptions = {}): Promise<BackupResult> {
  const started = process.hrtime.bigint();
  const setDir = join(destination, source.name);
  const setLock = await lockBackupSet(setDir);
  try {
    const discarded = await discardInterrupted(setDir);
    if (discarded.length > 0) {
      options.onWarning?.({ code: 'SBM_BACKUP_DISCARDED', message: `removed ${discarded.length} interrupted backup(s): ${discarded.join(', ')}` });
    }
    const previous = (await listBackups(setDir)).at(-1);
    const previousManifest = previous === undefined ? undefined : await readManifest(previous.path);
    const frozen = await source.freeze();
    try {
      const plan = await planBackup(source, frozen, previousManifest);
      if (plan.fallbackReason !== undefined) {
        options.onWarning?.({ code: 'SBM_BACKUP_FULL_COMPARE', message: `${plan.fallbackReason}; comparing every band's hash with the previous backup` });
      }
      const stem = await freeBackupStem(setDir, frozen.takenAt);
      const building = join(setDir, stem + IN_PROGRESS_SUFFIX);
      try {
        const built = await buildBackup(building, frozen, plan, previous?.path, previousManifest, options);
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const manifest: BackupManifest = {
          version: MANIFEST_VERSION,
          source: { path: source.path, name: source.name },
          takenAt: frozen.takenAt.toISOString(),
          sizeBytes: plan.sizeBytes,
          bandSizeBytes: plan.bandSizeBytes,
          ...(frozen.token === undefined ? {} : { token: frozen.token }),
          mode: plan.mode,
          ...(plan.fallbackReason === undefined ? {} : { fallbackReason: plan.fallbackReason }),
          bands: built.bands,
          stats: { bandsCopied: built.bandsCopied, bandsLinked: built.bandsLinked, bytesWritten: built.bytesWritten, seconds },
        };
        await writeNewFileDurably(join(building, MANIFEST_RELATIVE_PATH), Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`));
        await fsyncDirectory(join(building, '.sbm'));
        await fsyncDirectory(building);
        const finalPath = join(setDir, stem + BACKUP_SUFFIX);
        await rename(building, finalPath);
        await fsyncDirectory(setDir);
        return { path: finalPath, name: stem + BACKUP_SUFFIX, mode: plan.mode, ...(plan.fallbackReason ? { fallbackReason: plan.fallbackReason } : {}), ...manifest.stats };
      } catch (error) {
        await rm(building, { recursive: true, force: true });
        throw error;
      }
    } finally {
      await frozen.release();
    }
  } catch (error) {
    throw translateWriteError(error, destination);
  } finally {
    await setLock.release();
  }
}

interface BackupPlan {
  readonly mode: BackupMode;
  readonly fallbackReason?: string;
  readonly sizeBytes: number;
  readonly bandSizeBytes: number;
  /** Bands present at the frozen point. */
  readonly present: readonly number[];
  /** Bands the tracker names as changed (mode 'tracked' only). */
  readonly changed?: ReadonlySet<number>;
}

async function planBackup(source: BackupSource, frozen: FrozenPoint, previous: BackupManifest | undefined): Promise<BackupPlan> {
  const info = await readBundleInfo(bundlePaths(frozen.bundlePath), () => undefined);
  const present = (await readdir(join(frozen.bundlePath, 'bands')))
    .map(parseBandName)
    .filter((index): index is number => index !== undefined)
    .sort((a, b) => a - b);
  const base = { sizeBytes: info.sizeBytes, bandSizeBytes: info.bandSizeBytes, present };
  if (previous === undefined) return { ...base, mode: 'full' };
  if (previous.bandSizeBytes !== info.bandSizeBytes) {
    return { ...base, mode: 'hash-compare', fallbackReason: 'the band size changed since the previous backup' };
  }
  if (previous.token === undefined) return { ...base, mode: 'hash-compare', fallbackReason: 'the previous backup has no tracker token' };
  const answer = await source.changedSince(previous.token);
  if (answer.kind === 'refused') return { ...base, mode: 'hash-compare', fallbackReason: `the tracker refused the previous token (${answer.reason})` };
  return { ...base, mode: 'tracked', changed: answer.bands };
}

interface BuiltBands {
  readonly bands: Record<string, BandRecord>;
  readonly bandsCopied: number;
  readonly bandsLinked: number;
  readonly bytesWritten: number;
}

async function buildBackup(
  building: string,
  frozen: FrozenPoint,
  plan: BackupPlan,
  previousPath: string | undefined,
  previous: BackupManifest | undefined,
  options: BackupOptions,
): Promise<BuiltBands> {
  const frozenPaths = bundlePaths(frozen.bundlePath);
  await mkdir(join(building, 'bands'), { recursive: true });
  await mkdir(join(building, '.sbm'));
  // The backup carries the frozen point's plist bytes: a complete bundle that hdiutil opens.
  const plist = await readFile(frozenPaths.infoPlist).catch(() => readFile(frozenPaths.infoBackup));
  await writeNewFileDurably(join(building, 'Info.bckup'), plist);
  await writeNewFileDurably(join(building, 'Info.plist'), plist);
  await writeNewFileDurably(join(building, 'token'), Buffer.alloc(0));
  await writeNewFileDurably(join(building, 'lock'), Buffer.alloc(0));

  const bands: Record<string, BandRecord> = {};
  let bandsCopied = 0;
  let bandsLinked = 0;
  let bytesWritten = 0;
  let bandsDone = 0;
  await mapLimit(plan.present, 2, async (bandIndex) => {
    const name = bandFileName(bandIndex);
    const from = join(frozenPaths.bands, name);
    const to = join(building, 'bands', name);
    const before = previous?.bands[name];
    let reuse = false;
    if (before !== undefined && previousPath !== undefined) {
      if (plan.mode === 'tracked') reuse = !(plan.changed?.has(bandIndex) ?? true);
      else if (plan.mode === 'hash-compare') reuse = (await hashFile(from)).sha256 === before.sha256;
    }
    if (reuse && before !== undefined && previousPath !== undefined) {
      await linkOrCopy(join(previousPath, 'bands', name), to, options.copyMode === true);
      bands[name] = before;
      bandsLinked++;
    } else {
      bands[name] = await copyHashing(from, to);
      bytesWritten += bands[name].size;
      bandsCopied++;
    }
    options.onProgress?.({ bandsDone: ++bandsDone, bandsTotal: plan.present.length });
  });
  await fsyncDirectory(join(building, 'bands'));
  return { bands, bandsCopied, bandsLinked, bytesWritten };
}

/** Links `from` to `to`; copies instead in copy mode or when the inode has too many links. */
async function linkOrCopy(from: string, to: string, copyMode: boolean): Promise<void> {
  if (copyMode) {
    await copyFile(from, to);
    return;
  }
  try {
    await link(from, to);
  } catch (error) {
    const errno = (error as NodeJS.ErrnoException).code;
    if (errno === 'EMLINK') {
      await copyFile(from, to); // a fresh inode; later backups link to this one
      return;
    }
    if (errno === 'EPERM' || errno === 'ENOTSUP' || errno === 'EOPNOTSUPP' || errno === 'EXDEV') {
      throw new SbmError('SBM_NO_HARDLINKS', `the destination cannot hard-link ${basename(from)} (${errno}); use --copy`, { errno });
    }
    throw error;
  }
}

/** Copies a band while hashing it; the copy is fsynced before it counts. */
async function copyHashing(from: string, to: string): Promise<BandRecord> {
  const hash = createHash('sha256');
  const source = await open(from, 'r');
  const target = await open(to, 'wx', 0o644);
  try {
    const buffer = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
    let position = 0;
    for (;;) {
      const { bytesRead } = await source.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      hash.update(chunk);
      await writeFully(target, chunk, position);
      position += bytesRead;
    }
    await target.sync();
    return { size: position, sha256: hash.digest('hex') };
  } finally {
    await source.close();
    await target.close();
  }
}

export async function hashFile(path: string): Promise<BandRecord> {
  const hash = createHash('sha256');
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { size, sha256: hash.digest('hex') };
  } finally {
    await handle.close();
  }
}


function translateWriteError(error: unknown, destination: string): unknown {
  if (isSbmError(error)) return error;
  const errno = (error as NodeJS.ErrnoException).code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return new SbmError('SBM_NO_SPACE', `the destination ${destination} is full; the partial backup was removed and no other backup was touched`, {
      path: destination,
    });
  }
  return fromSystemError(error, 'backup failed at', destination);
}
