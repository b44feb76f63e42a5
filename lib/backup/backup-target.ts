// What a path given to `backups`, `verify` or `thin` names: one backup (a folder with its
// manifest, whatever its name), a set (DEST/NAME, holding backups) or a destination (DEST,
// holding sets), as restic and borg take a repository or one snapshot/archive alike.

import { readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SbmError, fromSystemError } from '../errors.js';
import { hasManifest, listBackups } from './backup-set.js';

export type BackupTargetKind = 'backup' | 'set' | 'destination';

export interface BackupTarget {
  readonly kind: BackupTargetKind;
  /** The path as given, without trailing slashes. */
  readonly path: string;
  /** The sets involved: the backup's own set, the set itself, or every set of the destination (sorted). */
  readonly sets: readonly string[];
}

export async function resolveBackupTarget(given: string): Promise<BackupTarget> {
  const path = given.length > 1 ? given.replace(/\/+$/, '') : given;
  const info = await stat(path).catch((error: unknown) => {
    throw fromSystemError(error, 'cannot read', path);
  });
  if (info.isDirectory()) {
    if (await hasManifest(path)) return { kind: 'backup', path, sets: [dirname(path)] };
    if ((await listBackups(path)).length > 0) return { kind: 'set', path, sets: [path] };
    const sets: string[] = [];
    for (const entry of await readdir(path, { withFileTypes: true })) {
      if (entry.isDirectory() && (await listBackups(join(path, entry.name))).length > 0) sets.push(join(path, entry.name));
    }
    if (sets.length > 0) return { kind: 'destination', path, sets: sets.sort() };
  }
  throw new SbmError(
    'SBM_NOT_A_BACKUP',
    `${path} is not a backup, a backup set or a folder of sets (no backup with a manifest); nothing was changed`,
    { path },
  );
}
