// Reading a backup set: what each backup holds, what deleting it would free, and whether its
// bands still match their manifest.

import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { mapLimit } from '../map-limit.js';
import { type BackupManifest, readManifest } from './backup-manifest.js';
import { type BackupEntry, listBackups } from './backup-set.js';
import { resolveBackupTarget } from './backup-target.js';
import { hashFile } from './band-files.js';

export interface BackupSummary {
  readonly name: string;
  readonly path: string;
  readonly time: string;
  readonly sizeBytes: number;
  readonly bands: number;
  /** Bytes of band files no other backup links: what deleting this backup frees. */
  readonly uniqueBytes: number;
  readonly mode: string;
}

export async function describeBackups(setDir: string): Promise<BackupSummary[]> {
  const summaries: BackupSummary[] = [];
  for (const entry of await listBackups(setDir)) {
    const manifest = await readManifest(entry.path);
    let uniqueBytes = 0;
    await mapLimit(Object.keys(manifest.bands), 16, async (name) => {
      const info = await stat(join(entry.path, 'bands', name)).catch(() => undefined);
      if (info !== undefined && info.nlink === 1) uniqueBytes += info.blocks * 512;
    });
    summaries.push({
      name: entry.name,
      path: entry.path,
      time: entry.time.toISOString(),
      sizeBytes: manifest.sizeBytes,
      bands: Object.keys(manifest.bands).length,
      uniqueBytes,
      mode: manifest.mode,
    });
  }
  return summaries;
}

export interface DamagedBand {
  readonly backup: string;
  readonly band: string;
  readonly problem: string;
  /** Other backups of the set that link the same file (damaged with it). */
  readonly sharedWith: string[];
}

export interface VerifyReport {
  readonly backupsChecked: number;
  readonly bandsChecked: number;
  readonly damaged: DamagedBand[];
}

/**
 * Re-hashes every band of one backup, of every backup in a set, or of every set of a destination.
 * Damaged bands name their backup as given (one backup), by name (a set) or as SET/NAME (a
 * destination).
 */
export interface VerifyOptions {
  /** After each band: bands hashed of the total, and the bytes read to hash them. */
  readonly onProgress?: (progress: { bandsDone: number; bandsTotal: number; bytesRead: number }) => void;
}

export async function verifyBackups(path: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const target = await resolveBackupTarget(path);
  const backups: BackupEntry[] = [];
  if (target.kind === 'backup') backups.push({ name: path, path: target.path, time: new Date(0) });
  for (const set of target.kind === 'backup' ? [] : target.sets) {
    for (const entry of await listBackups(set)) {
      backups.push(target.kind === 'set' ? entry : { ...entry, name: `${basename(set)}/${entry.name}` });
    }
  }
  const inodes = new Map<string, string[]>(); // dev:ino -> backups that link it
  const damaged: Array<Omit<DamagedBand, 'sharedWith'> & { inode?: string }> = [];
  let bandsChecked = 0;
  let bytesRead = 0;
  // Manifests first, so progress knows the total.
  const manifests = new Map<string, BackupManifest>();
  for (const backup of backups) manifests.set(backup.path, await readManifest(backup.path));
  let bandsTotal = 0;
  for (const manifest of manifests.values()) bandsTotal += Object.keys(manifest.bands).length;
  for (const backup of backups) {
    const manifest = manifests.get(backup.path) as BackupManifest;
    const present = new Set(await readdir(join(backup.path, 'bands')));
    for (const name of present) {
      if (!(name in manifest.bands)) damaged.push({ backup: backup.name, band: name, problem: 'band file not in the manifest' });
    }
    await mapLimit(Object.entries(manifest.bands), 2, async ([name, record]) => {
      bandsChecked++;
      const file = join(backup.path, 'bands', name);
      const fileInfo = await stat(file).catch(() => undefined);
      if (fileInfo === undefined) {
        damaged.push({ backup: backup.name, band: name, problem: 'band file is missing' });
        return;
      }
      const inode = `${fileInfo.dev}:${fileInfo.ino}`;
      inodes.set(inode, [...(inodes.get(inode) ?? []), backup.name]);
      const actual = await hashFile(file);
      bytesRead += actual.size;
      options.onProgress?.({ bandsDone: bandsChecked, bandsTotal, bytesRead });
      if (actual.size !== record.size || actual.sha256 !== record.sha256) {
        damaged.push({
          backup: backup.name,
          band: name,
          problem: `content differs from the manifest (sha256 ${actual.sha256.slice(0, 12)}…)`,
          inode,
        });
      }
    });
  }
  return {
    backupsChecked: backups.length,
    bandsChecked,
    damaged: damaged.map(({ inode, ...band }) => ({
      ...band,
      sharedWith: inode === undefined ? [] : (inodes.get(inode) ?? []).filter((name) => name !== band.backup),
    })),
  };
}
