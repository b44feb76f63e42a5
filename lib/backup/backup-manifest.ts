// The manifest each backup carries at .sbm/manifest.json: every band's size and sha256, the
// tracker token of the point it was taken at (the next backup asks for changes since it), and
// what the run did. verify re-hashes bands against it; the hash-compare fallback reuses it.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SbmError } from '../errors.js';
import { BACKUP_MANIFEST_PATH } from '../fs/backup-guard.js';

export const MANIFEST_VERSION = 1;
/** The same path the backup guard looks for (lib/fs/backup-guard.ts). */
export const MANIFEST_RELATIVE_PATH = BACKUP_MANIFEST_PATH;

export interface BandRecord {
  readonly size: number;
  readonly sha256: string;
}

export type BackupMode = 'full' | 'tracked' | 'hash-compare';

export interface BackupManifest {
  readonly version: number;
  readonly source: { readonly path: string; readonly name: string };
  /** ISO-8601 time the frozen point was taken. */
  readonly takenAt: string;
  readonly sizeBytes: number;
  readonly bandSizeBytes: number;
  /** Tracker token naming the frozen point; absent when the source has no tracker. */
  readonly token?: string;
  readonly mode: BackupMode;
  /** Why the run fell back to comparing hashes, when it did. */
  readonly fallbackReason?: string;
  /** Keyed by band name (lowercase hex). */
  readonly bands: Readonly<Record<string, BandRecord>>;
  readonly stats: {
    readonly bandsCopied: number;
    readonly bandsLinked: number;
    readonly bytesWritten: number;
    readonly seconds: number;
  };
}

export async function readManifest(backupPath: string): Promise<BackupManifest> {
  const path = join(backupPath, MANIFEST_RELATIVE_PATH);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    const errno = (error as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT') throw new SbmError('SBM_NOT_A_BACKUP', `${backupPath} has no backup manifest`, { path: backupPath });
    throw new SbmError('SBM_CORRUPT', `${path} is not a valid manifest: ${(error as Error).message}`, { path });
  }
  const manifest = parsed as Partial<BackupManifest>;
  if (
    manifest.version !== MANIFEST_VERSION ||
    typeof manifest.bands !== 'object' ||
    manifest.bands === null ||
    typeof manifest.sizeBytes !== 'number' ||
    typeof manifest.bandSizeBytes !== 'number' ||
    typeof manifest.takenAt !== 'string'
  ) {
    throw new SbmError('SBM_CORRUPT', `${path} is not a version ${MANIFEST_VERSION} backup manifest`, { path });
  }
  return manifest as BackupManifest;
}
