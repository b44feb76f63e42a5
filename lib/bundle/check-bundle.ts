// `sbm check`: structural audit of a bundle folder against the format rules. Problems are things
// macOS or other readers would trip on (or that break sbm's guarantees); warnings are oddities
// that are tolerated. Reads only; never repairs.

import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SbmError, isSbmError } from '../errors.js';
import type { SbmWarning } from '../warnings.js';
import { BundleLock } from './bundle-lock.js';
import { bandCountOf, listBandFolder } from './band-listing.js';
import { type BundlePaths, bandFileName, bundlePaths, parseBandName } from './bundle-paths.js';
import { INFO_PLIST_MAX_BYTES, MAPPED_BLOCK_BYTES } from './constants.js';
import { readTokenBytes } from './bundle-encryption.js';
import { ENCRCDSA_SIGNATURE } from './encrypted-token-layout.js';
import { parseEncryptedToken } from './encrypted-token.js';
import { directoryKind, fileKind, isNotRegularFile, readSmallFile } from '../fs/safe-open.js';
import { type BundleInfo, parseInfoPlistAsync, renderInfoPlist, validateGeometry } from './info-plist.js';

export interface CheckFinding {
  readonly code: string;
  readonly message: string;
}

export interface CheckReport {
  readonly path: string;
  readonly problems: CheckFinding[];
  readonly warnings: CheckFinding[];
  bandsChecked: number;
}

export async function checkBundle(path: string): Promise<CheckReport> {
  const paths = bundlePaths(path);
  const report: CheckReport = { path, problems: [], warnings: [], bandsChecked: 0 };
  const problem = (code: string, message: string): void => void report.problems.push({ code, message });
  const warn = (code: string, message: string): void => void report.warnings.push({ code, message });

  const root = await stat(path).catch(() => undefined);
  if (root === undefined) throw new SbmError('SBM_NOT_FOUND', `${path} does not exist`, { path });
  if (!root.isDirectory()) throw new SbmError('SBM_NOT_A_BUNDLE', `${path} is not a directory`, { path });

  // A shared lock keeps a writer from changing bands while we look; a busy bundle is still checked.
  const lockWarnings: SbmWarning[] = [];
  let lock: BundleLock | undefined;
  try {
    lock = await BundleLock.acquire(paths, 'shared', (w) => lockWarnings.push(w));
  } catch (error) {
    if (isSbmError(error, 'SBM_CORRUPT'))
      problem('SBM_CORRUPT', `lock is a ${String(error.data.kind ?? 'special file')}, not a regular file`);
    else if (isSbmError(error, 'SBM_LOCKED'))
      warn('SBM_IN_USE', `${path} is open for writing by another process; results may be out of date`);
    else throw error;
  }
  try {
    const info = await checkPlists(paths, problem, warn);
    await checkToken(paths, problem);
    if (info !== undefined) {
      report.bandsChecked = await checkBands(paths, info, problem);
      await checkMapped(paths, info, problem, warn);
    }
    await checkStaging(paths, warn);
    await checkFolders(paths, problem);
  } finally {
    await lock?.release();
  }
  return report;
}

type Report = (code: string, message: string) => void;

/** The plist's bytes; undefined when missing; a reported problem (and undefined) when too long or not a file. */
async function readPlistForCheck(path: string, name: string, problem: Report): Promise<Buffer | undefined> {
  try {
    const read = await readSmallFile(path, INFO_PLIST_MAX_BYTES);
    if (!read.tooLong) return read.bytes;
    problem('SBM_BAD_PLIST', `${name} is ${read.sizeBytes} bytes; macOS reads only the first ${INFO_PLIST_MAX_BYTES}`);
  } catch (error) {
    if (!isNotRegularFile(error)) return undefined;
    problem('SBM_BAD_PLIST', `${name} is a ${error.kind}, not a regular file`);
  }
  return Buffer.alloc(0);
}

async function checkPlists(paths: BundlePaths, problem: Report, warn: Report): Promise<BundleInfo | undefined> {
  const plistBytes = await readPlistForCheck(paths.infoPlist, 'Info.plist', problem);
  const backupBytes = await readPlistForCheck(paths.infoBackup, 'Info.bckup', problem);
  let info: BundleInfo | undefined;
  for (const [name, bytes] of [
    ['Info.plist', plistBytes],
    ['Info.bckup', backupBytes],
  ] as const) {
    if (bytes === undefined) {
      (name === 'Info.plist' ? problem : warn)('SBM_PLIST_MISSING', `${name} is missing`);
      continue;
    }
    if (bytes.length === 0) continue; // reported by readPlistForCheck (an empty plist is not a plist anyway)
    try {
      const parsed = await parseInfoPlistAsync(bytes, name);
      validateGeometry(parsed.bandSizeBytes, parsed.sizeBytes);
      info ??= parsed;
      if (!renderInfoPlist(parsed).equals(bytes)) {
        warn('SBM_PLIST_NOT_CANONICAL', `${name} differs from the hdiutil template (readers that parse by line may fail)`);
      }
    } catch (error) {
      problem(isSbmError(error) ? error.code : 'SBM_BAD_PLIST', (error as Error).message);
    }
  }
  if (plistBytes !== undefined && backupBytes !== undefined && !plistBytes.equals(backupBytes)) {
    problem('SBM_PLIST_MISMATCH', 'Info.plist and Info.bckup differ');
  }
  return info;
}

async function checkToken(paths: BundlePaths, problem: Report): Promise<void> {
  const token = await lstat(paths.token).catch(() => undefined);
  if (token === undefined) problem('SBM_NO_TOKEN', 'token is missing; macOS will not recognise the bundle');
  else if (!token.isFile()) problem('SBM_CORRUPT', `token is a ${fileKind(token)}, not a regular file`);
  else if (token.size > 0) await checkEncryptedToken(paths, problem);
}

/** An encrypted bundle's token must be one sbm (and hdiutil) can unlock; its keys are not needed to check the layout. */
async function checkEncryptedToken(paths: BundlePaths, problem: Report): Promise<void> {
  try {
    const bytes = await readTokenBytes(paths);
    if (bytes.subarray(0, ENCRCDSA_SIGNATURE.length).toString('latin1') !== ENCRCDSA_SIGNATURE) {
      problem('SBM_ENCRYPTED', 'token is not empty and not an encrcdsa header: encrypted in a way sbm does not know');
      return;
    }
    const token = parseEncryptedToken(bytes, paths.token);
    if (token.passphraseRecords.length === 0)
      problem('SBM_UNSUPPORTED', 'the token has no passphrase key record (certificate or keybag only)');
  } catch (error) {
    problem(isSbmError(error) ? error.code : 'SBM_CORRUPT', (error as Error).message);
  }
}

async function checkBands(paths: BundlePaths, info: BundleInfo, problem: Report): Promise<number> {
  const folder = await lstat(paths.bands).catch(() => undefined);
  if (folder !== undefined && !folder.isDirectory()) {
    problem('SBM_BAD_BAND', `bands/ is a ${fileKind(folder)}, not a folder (band files would lie outside the bundle)`);
    return 0;
  }
  // Stray names (not canonical, or past the end) are problems here: macOS may read them as bands.
  const bands = await listBandFolder(paths.bands, bandCountOf(info.sizeBytes, info.bandSizeBytes), (warning) =>
    problem(warning.code, warning.message),
  ).catch(() => undefined);
  if (bands === undefined) {
    problem('SBM_NO_BANDS_DIR', 'bands/ is missing');
    return 0;
  }
  let checked = 0;
  for (const bandIndex of bands.sort((a, b) => a - b)) {
    const name = bandFileName(bandIndex);
    const entry = await lstat(`${paths.bands}/${name}`).catch(() => undefined);
    if (entry === undefined) continue; // removed while we looked
    if (!entry.isFile()) {
      problem('SBM_BAD_BAND', `bands/${name} is a ${fileKind(entry)}, not a regular file; sbm refuses to read or write it`);
      continue;
    }
    checked++;
    const limit = Math.min(info.bandSizeBytes, info.sizeBytes - bandIndex * info.bandSizeBytes);
    if (entry.size > limit) problem('SBM_BAND_OVERSIZE', `bands/${name} is ${entry.size} bytes, more than its ${limit}`);
  }
  return checked;
}

async function checkMapped(paths: BundlePaths, info: BundleInfo, problem: Report, warn: Report): Promise<void> {
  const names = await readdir(paths.mapped).catch(() => undefined);
  if (names === undefined) return;
  const expected = Math.ceil(info.bandSizeBytes / MAPPED_BLOCK_BYTES / 8);
  for (const name of names) {
    if (parseBandName(name) === undefined) {
      warn('SBM_STRAY_FILE', `mapped/${name} is not a band name`);
      continue;
    }
    const entry = await lstat(`${paths.mapped}/${name}`).catch(() => undefined);
    if (entry === undefined) continue;
    if (!entry.isFile()) problem('SBM_CORRUPT', `mapped/${name} is a ${fileKind(entry)}, not a regular file`);
    else if (entry.size < expected) problem('SBM_MAPPED_SHORT', `mapped/${name} is ${entry.size} bytes, expected ${expected}`);
  }
  if (info.bandSizeBytes !== 8 * 1024 * 1024) {
    warn('SBM_MAPPED_UNVERIFIED', `mapped/ bitmaps for ${info.bandSizeBytes}-byte bands are sized by inference, not verified on macOS`);
  }
}

async function checkStaging(paths: BundlePaths, warn: Report): Promise<void> {
  const leftovers = await readdir(paths.tmp).catch(() => []);
  if (leftovers.length > 0) {
    warn(
      'SBM_STAGING_LEFTOVERS',
      `${leftovers.length} leftover file(s) in .sbm/tmp from an interrupted run (removed at next read-write open)`,
    );
  }
  const lock = await lstat(paths.lock).catch(() => undefined);
  if (lock?.isFile() && lock.size > 0) warn('SBM_LOCK_NOT_EMPTY', 'lock is not empty');
}

/** Folders sbm writes into must be real folders: through a symlink, sbm would write outside the bundle. */
async function checkFolders(paths: BundlePaths, problem: Report): Promise<void> {
  for (const [folder, name] of [
    [paths.mapped, 'mapped/'],
    [paths.sbm, '.sbm/'],
    [paths.tmp, '.sbm/tmp/'],
    [join(paths.sbm, 'snapshots'), '.sbm/snapshots/'],
  ] as const) {
    const kind = await directoryKind(folder).catch(() => undefined);
    if (kind !== undefined && kind !== 'directory') problem('SBM_CORRUPT', `${name} is a ${kind}, not a folder`);
  }
}
