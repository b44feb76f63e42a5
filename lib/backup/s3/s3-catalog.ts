// Reading an S3 repository: which repository, set or backup an address names, what each backup
// holds, and whether the stored chunks still match their ids (verify).

import { randomInt } from 'node:crypto';
import { SbmError, isSbmError } from '../../errors.js';
import { mapLimit } from '../../map-limit.js';
import type { ObjectStore } from './object-store.js';
import { type S3Location, formatS3Url, splitLast } from './s3-location.js';
import type { S3BackupManifest } from './s3-manifest.js';
import { type OpenRepositoryOptions, type S3BackupEntry, S3Repository } from './s3-repository.js';

const VERIFY_LANES = 8;

export interface S3Target {
  readonly repository: S3Repository;
  readonly set?: string;
  readonly name?: string;
}

/** The repository an address names, and the set (`.../<set>`) or backup (`.../<set>/<name>`) in it. */
export async function openS3Target(store: ObjectStore, location: S3Location, options: OpenRepositoryOptions = {}): Promise<S3Target> {
  const here = await S3Repository.open(store, location.prefix, options);
  if (here !== undefined) return { repository: here };
  const up = splitLast(location.prefix);
  if (up !== undefined) {
    const parent = await S3Repository.open(store, up.parent, options);
    if (parent !== undefined) return { repository: parent, set: up.last };
    const upAgain = splitLast(up.parent);
    if (upAgain !== undefined) {
      const grand = await S3Repository.open(store, upAgain.parent, options);
      if (grand !== undefined) return { repository: grand, set: upAgain.last, name: up.last };
    }
  }
  const url = formatS3Url(location);
  throw new SbmError('SBM_NOT_A_BACKUP', `${url} holds no sbm backup repository (nor is it a set or backup in one)`, { url });
}

/** The backups a target names: one, a set's, or the whole repository's (oldest first). */
export async function backupsOf(target: S3Target): Promise<S3BackupEntry[]> {
  const entries = await target.repository.listBackups(target.set);
  const chosen = target.name === undefined ? entries : entries.filter((entry) => entry.name === target.name);
  if (target.name !== undefined && chosen.length === 0) {
    const url = target.repository.store.describe(target.repository.manifestKey(target.set ?? '', target.name));
    throw new SbmError('SBM_NOT_A_BACKUP', `no backup ${target.set}/${target.name} (${url} does not exist)`, { url });
  }
  return chosen;
}

export interface S3BackupSummary {
  readonly set: string;
  readonly name: string;
  readonly time: string;
  readonly sizeBytes: number;
  readonly bands: number;
  readonly chunks: number;
  readonly mode: string;
  readonly bytesUploaded: number;
}

export async function describeS3Backups(target: S3Target): Promise<S3BackupSummary[]> {
  const summaries: S3BackupSummary[] = [];
  for (const entry of await backupsOf(target)) {
    const manifest = await target.repository.readManifest(entry.set, entry.name);
    summaries.push({
      set: entry.set,
      name: entry.name,
      time: entry.time.toISOString(),
      sizeBytes: manifest.sizeBytes,
      bands: Object.keys(manifest.bands).length,
      chunks: Object.values(manifest.bands).reduce((sum, band) => sum + band.chunks.filter((id) => id !== null).length, 0),
      mode: manifest.mode,
      bytesUploaded: manifest.stats.bytesUploaded,
    });
  }
  return summaries;
}

export interface S3DamagedChunk {
  readonly chunk: string;
  readonly url: string;
  readonly problem: string;
  /** Backups (`set/name`) that use the chunk: each restores wrong without it. */
  readonly backups: string[];
  /** Bands (`set/name band <hex>`) that use it. */
  readonly bands: string[];
}

export interface S3VerifyReport {
  readonly backupsChecked: number;
  readonly chunksTotal: number;
  readonly chunksChecked: number;
  readonly damaged: S3DamagedChunk[];
}

/** Re-hashes the chunks the target's backups use (all, or a random `samplePercent` of them). */
export async function verifyS3Backups(target: S3Target, options: { readonly samplePercent?: number } = {}): Promise<S3VerifyReport> {
  const users = new Map<string, { backups: Set<string>; bands: string[] }>();
  const backups = await backupsOf(target);
  for (const entry of backups) {
    const manifest: S3BackupManifest = await target.repository.readManifest(entry.set, entry.name);
    for (const [band, record] of Object.entries(manifest.bands)) {
      for (const id of record.chunks) {
        if (id === null) continue;
        const use = users.get(id) ?? { backups: new Set<string>(), bands: [] };
        users.set(id, use);
        const backup = `${entry.set}/${entry.name}`;
        use.backups.add(backup);
        if (use.bands.at(-1) !== `${backup} band ${band}`) use.bands.push(`${backup} band ${band}`);
      }
    }
  }
  const ids = [...users.keys()];
  const chosen = options.samplePercent === undefined ? ids : sample(ids, Math.ceil((ids.length * options.samplePercent) / 100));
  const damaged: S3DamagedChunk[] = [];
  await mapLimit(chosen, VERIFY_LANES, async (id) => {
    try {
      await target.repository.readChunk(id);
    } catch (error) {
      if (!isSbmError(error, 'SBM_CORRUPT')) throw error;
      const use = users.get(id);
      damaged.push({
        chunk: id,
        url: target.repository.store.describe(target.repository.chunkKey(id)),
        problem: error.message.replace(/^SBM_CORRUPT: \S+ /, ''),
        backups: [...(use?.backups ?? [])],
        bands: use?.bands ?? [],
      });
    }
  });
  return { backupsChecked: backups.length, chunksTotal: ids.length, chunksChecked: chosen.length, damaged };
}

/** `count` distinct items picked uniformly (partial Fisher-Yates). */
function sample<T>(items: readonly T[], count: number): T[] {
  const pool = [...items];
  const take = Math.min(count, pool.length);
  for (let index = 0; index < take; index++) {
    const pick = index + randomInt(pool.length - index);
    [pool[index], pool[pick]] = [pool[pick] as T, pool[index] as T];
  }
  return pool.slice(0, take);
}
