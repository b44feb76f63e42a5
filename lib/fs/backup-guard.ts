// Backups are never changed by mistake. A backup is a folder holding `.sbm/manifest.json` (sbm
// backup writes it last, before the rename that publishes the backup), and one write would make
// it disagree with its manifest, as would a read-write open (it adds tracking files). So every
// read-write open of a bundle, every new bundle, and every output that would replace a path or be
// written inside one asks here first, as restic and borg keep their repositories read-only.
// Only `sbm mount --writable-backup` opts out (OpenBundleOptions.allowBackupWrites).

import { lstat, realpath } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { SbmError } from '../errors.js';

/** Where a backup keeps its manifest, relative to the backup's folder. */
export const BACKUP_MANIFEST_PATH = join('.sbm', 'manifest.json');

/**
 * True when `folder` holds a backup manifest. Any answer but "no such file" counts as yes (a
 * manifest sbm cannot stat is still a backup's): refusing a write costs less than breaking one.
 */
export async function isBackupFolder(folder: string): Promise<boolean> {
  return lstat(join(folder, BACKUP_MANIFEST_PATH)).then(
    () => true,
    (error: NodeJS.ErrnoException) => error.code !== 'ENOENT' && error.code !== 'ENOTDIR',
  );
}

/**
 * The backup `path` is, or lies inside, or undefined. Both the path as written and its real path
 * (symlinks resolved, when it exists) are walked up to the root.
 */
export async function backupHolding(path: string): Promise<string | undefined> {
  const written = resolve(path);
  const real = await realpath(written).catch(() => written);
  const seen = new Set<string>();
  for (const start of [written, real]) {
    for (let folder = start; !seen.has(folder); folder = dirname(folder)) {
      seen.add(folder);
      if (await isBackupFolder(folder)) return folder;
    }
  }
  return undefined;
}

/**
 * Throws SBM_BACKUP_READ_ONLY when `path` is a backup or lies inside one. `doing` says what was
 * refused ("open it read-write", "replace it", ...).
 */
export async function assertNotBackup(path: string, doing: string): Promise<void> {
  const backup = await backupHolding(path);
  if (backup === undefined) return;
  const where = resolve(backup) === resolve(path) ? `${path} is an sbm backup` : `${path} lies inside the sbm backup ${backup}`;
  throw new SbmError(
    'SBM_BACKUP_READ_ONLY',
    `${where} (it holds ${BACKUP_MANIFEST_PATH}); sbm does not ${doing}: a backup is never changed. ` +
      'Restore it to a new bundle (sbm restore) to work on a copy; nothing was changed',
    { path, backup },
  );
}
