// The files of a bundle folder other than bands: Info.plist / Info.bckup (read with fallback,
// written atomically in macOS's order), the new bundle's token, bands/ listing, and the staging
// folder. SparseBundle.open and the backup code read bundles through these.

import { lstat, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SbmError, fromSystemError, isSbmError } from '../errors.js';
import { fsyncDirectory, replaceFilesInOrder } from '../fs/atomic-write.js';
import { directoryKind, isNotRegularFile, readSmallFile } from '../fs/safe-open.js';
import type { WarningSink } from '../warnings.js';
import { bandCountOf, listBandFolder, listBandFolderSync } from './band-listing.js';
import type { BundlePaths } from './bundle-paths.js';
import { BAND_COUNT_ADVICE, INFO_PLIST_MAX_BYTES } from './constants.js';
import { LazyBandSet } from './lazy-band-set.js';
import { type BundleInfo, parseInfoPlistAsync, renderInfoPlist } from './info-plist.js';

/** Writes Info.bckup then Info.plist, each atomically, keeping version 2 and its uuid. */
export async function writeInfoFiles(paths: BundlePaths, info: BundleInfo): Promise<void> {
  const bytes = renderInfoPlist(info);
  await replaceFilesInOrder(
    [
      { path: paths.infoBackup, data: bytes },
      { path: paths.infoPlist, data: bytes },
    ],
    paths.tmp,
  );
}

/** The files of a new, empty bundle in the existing empty folder `paths.root`, durable; `token` is empty unless encrypted. */
export async function writeEmptyBundle(paths: BundlePaths, plistBytes: Buffer, token: Buffer = Buffer.alloc(0)): Promise<void> {
  await mkdir(paths.bands);
  await mkdir(paths.tmp, { recursive: true });
  await replaceFilesInOrder(
    [
      { path: paths.token, data: token },
      { path: paths.lock, data: Buffer.alloc(0) },
      // Info.bckup first, as macOS does: a crash between the two leaves one valid copy.
      { path: paths.infoBackup, data: plistBytes },
      { path: paths.infoPlist, data: plistBytes },
    ],
    paths.tmp,
  );
  await fsyncDirectory(paths.sbm);
}

export async function assertBundleDirectory(paths: BundlePaths): Promise<void> {
  let info;
  try {
    info = await stat(paths.root);
  } catch (error) {
    throw fromSystemError(error, 'cannot open bundle', paths.root);
  }
  if (!info.isDirectory()) throw new SbmError('SBM_NOT_A_BUNDLE', `${paths.root} is not a directory`, { path: paths.root });
}

/**
 * The folders sbm writes into (bands/, mapped/, .sbm/, .sbm/tmp, .sbm/snapshots) must be real
 * folders when present: a symlinked bands/ would put every band file outside the bundle, a
 * symlinked .sbm/tmp would have its contents (outside) removed at open.
 */
export async function assertRealFolders(paths: BundlePaths): Promise<void> {
  const bandsKind = await directoryKind(paths.bands);
  if (bandsKind !== undefined && bandsKind !== 'directory') {
    throw new SbmError('SBM_BAD_BAND', `${paths.bands} is a ${bandsKind}, not a folder; sbm will not read or write band files through it`, {
      path: paths.bands,
      kind: bandsKind,
    });
  }
  for (const folder of [paths.mapped, paths.sbm, paths.tmp, join(paths.sbm, 'snapshots')]) {
    const kind = await directoryKind(folder);
    if (kind !== undefined && kind !== 'directory') {
      throw new SbmError('SBM_CORRUPT', `${folder} is a ${kind}, not a folder; sbm will not write through it (remove it to continue)`, {
        path: folder,
        kind,
      });
    }
  }
}

/** Info.plist, or Info.bckup when Info.plist is missing, too long, not a regular file or unparsable. */
export async function readBundleInfo(paths: BundlePaths, onWarning: WarningSink): Promise<BundleInfo> {
  const attempts: string[] = [];
  for (const [file, name] of [
    [paths.infoPlist, 'Info.plist'],
    [paths.infoBackup, 'Info.bckup'],
  ] as const) {
    let bytes: Buffer;
    try {
      bytes = await readPlistBytes(file, name);
    } catch (error) {
      attempts.push(isSbmError(error) ? plistReason(error) : `${name}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
      continue;
    }
    try {
      const info = await parseInfoPlistAsync(bytes, name);
      if (attempts.length > 0) {
        onWarning({ code: 'SBM_PLIST_FALLBACK', message: `using Info.bckup because ${attempts.join('; ')}`, data: { path: paths.root } });
      }
      return info;
    } catch (error) {
      attempts.push((error as Error).message.replace(/^SBM_BAD_PLIST: /, ''));
    }
  }
  if (attempts.every((attempt) => attempt.endsWith('ENOENT'))) {
    throw new SbmError('SBM_NOT_A_BUNDLE', `${paths.root} has no Info.plist or Info.bckup`, { path: paths.root });
  }
  throw new SbmError('SBM_BAD_PLIST', `${paths.root}: ${attempts.join('; ')}`, { path: paths.root });
}

/**
 * An Info.plist's bytes, read only when it is a regular file within Apple's 1 KiB limit: a 2 GB
 * plist or a FIFO costs one fstat, not a read. Throws SBM_BAD_PLIST naming the reason.
 */
export async function readPlistBytes(file: string, name: string): Promise<Buffer> {
  let read;
  try {
    read = await readSmallFile(file, INFO_PLIST_MAX_BYTES);
  } catch (error) {
    if (isNotRegularFile(error))
      throw new SbmError('SBM_BAD_PLIST', `${name} is a ${error.kind}, not a regular file`, { path: file, kind: error.kind });
    throw error;
  }
  if (read.tooLong) {
    throw new SbmError('SBM_BAD_PLIST', `${name} is ${read.sizeBytes} bytes; macOS reads only the first ${INFO_PLIST_MAX_BYTES}`, {
      path: file,
    });
  }
  return read.bytes;
}

function plistReason(error: Error): string {
  return error.message.replace(/^SBM_BAD_PLIST: /, '');
}

/** The bands of the bundle (band-listing.ts); a missing bands/ warns and, read-write, is created. */
export async function listBands(paths: BundlePaths, info: BundleInfo, readOnly: boolean, onWarning: WarningSink): Promise<Set<number>> {
  let bands: number[] | undefined;
  try {
    bands = await listBandFolder(paths.bands, bandCountOf(info.sizeBytes, info.bandSizeBytes), onWarning);
  } catch (error) {
    throw fromSystemError(error, 'cannot list bands of', paths.root);
  }
  if (bands !== undefined) return new Set(bands);
  onWarning({ code: 'SBM_NO_BANDS_DIR', message: `${paths.root} has no bands/ folder; the disk reads as zeros` });
  if (!readOnly) await mkdir(paths.bands);
  return new Set();
}

/**
 * The same listing, deferred: a set whose first use lists bands/ synchronously. For short commands
 * that never ask which bands exist (token, changed-bands), so a 20,000-band folder is not read.
 * Resolves to the eager listing when bands/ is missing (it warns and may create the folder).
 */
export async function deferredBandListing(
  paths: BundlePaths,
  info: BundleInfo,
  readOnly: boolean,
  onWarning: WarningSink,
): Promise<Set<number>> {
  if (!(await isDirectory(paths.bands))) return listBands(paths, info, readOnly, onWarning);
  return new LazyBandSet(() => {
    try {
      // Removed since open: nothing is there to read, as when bands/ is missing at open.
      return listBandFolderSync(paths.bands, bandCountOf(info.sizeBytes, info.bandSizeBytes), onWarning) ?? [];
    } catch (error) {
      throw fromSystemError(error, 'cannot list bands of', paths.root);
    }
  });
}

/** Leftovers in .sbm/tmp are from a crash: nothing refers to them while we hold the write lock. */
export async function clearStaging(paths: BundlePaths): Promise<void> {
  for (const name of await readdir(paths.tmp)) await rm(`${paths.tmp}/${name}`, { recursive: true, force: true });
}

/** A real folder (a symlink to one does not count). */
export async function isDirectory(path: string): Promise<boolean> {
  return lstat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
}

export function warnOnBandCount(bandSizeBytes: number, sizeBytes: number, onWarning: WarningSink): void {
  const bandCount = Math.ceil(sizeBytes / bandSizeBytes);
  if (bandCount > BAND_COUNT_ADVICE) {
    onWarning({
      code: 'SBM_MANY_BANDS',
      message: `${bandCount} bands exceeds the ~${BAND_COUNT_ADVICE} macOS handles well; consider a larger --band-size`,
    });
  }
}
