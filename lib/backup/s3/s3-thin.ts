// sbm thin s3://...: deletes whole backups by the same policy as folder sets (selectKept), then
// collects the chunks no remaining backup uses.
//
//   1. take the lease exclusively (s3-lease.ts): waits until no backup runs, and backups wait
//      for this run; so no backup relies on a chunk this run may delete
//   2. per set: choose the backups to keep; delete the other manifests first. Each backup is
//      gone the moment its manifest is, whole; its chunks are now unreferenced or shared
//   3. read every remaining manifest of the repository (all sets: chunks are shared across disks);
//      if any cannot be read, stop here and delete no chunk (SBM_CORRUPT)
//   4. list the chunk objects and delete those no manifest names (this includes chunks uploaded
//      by interrupted runs), then release the lease
//
// A crash between steps leaves unreferenced chunks at worst, collected by the next thin.

import { SbmError } from '../../errors.js';
import type { BackupEntry } from '../backup-set.js';
import { type ThinPolicy, selectKept } from '../thin-backups.js';
import type { LeaseOptions } from './s3-lease.js';
import { acquireLease } from './s3-lease.js';
import type { S3Repository } from './s3-repository.js';

export interface S3ThinOptions {
  /** Thin only this set (the others' manifests still protect their chunks). */
  readonly set?: string;
  readonly dryRun?: boolean;
  readonly now?: Date;
  readonly lease?: LeaseOptions;
}

export interface S3ThinResult {
  readonly sets: Array<{ readonly set: string; readonly kept: string[]; readonly deleted: string[] }>;
  readonly chunksDeleted: number;
  readonly bytesFreed: number;
  readonly chunksKept: number;
}

export async function thinS3Backups(repository: S3Repository, policy: ThinPolicy, options: S3ThinOptions = {}): Promise<S3ThinResult> {
  if (policy.maxBytes !== undefined) {
    throw new SbmError('SBM_USAGE', '--max-bytes is not supported for S3 repositories yet; use the --keep-* options');
  }
  const lease = await acquireLease(repository, 'thin', options.lease);
  try {
    const entries = await repository.listBackups(options.set);
    const bySet = new Map<string, BackupEntry[]>();
    for (const entry of entries) {
      const list = bySet.get(entry.set) ?? [];
      list.push({ name: entry.name, path: entry.key, time: entry.time });
      bySet.set(entry.set, list);
    }
    const sets: S3ThinResult['sets'] = [];
    const doomed: string[] = [];
    for (const [set, backups] of [...bySet].sort(([a], [b]) => a.localeCompare(b))) {
      const kept = selectKept(backups, policy, options.now ?? new Date());
      const deleted = backups.filter((backup) => !kept.has(backup.name));
      sets.push({ set, kept: backups.filter((backup) => kept.has(backup.name)).map((b) => b.name), deleted: deleted.map((b) => b.name) });
      doomed.push(...deleted.map((backup) => backup.path));
    }
    if (options.dryRun !== true) await repository.store.deleteMany(doomed); // manifests first
    const gone = new Set(options.dryRun === true ? doomed : []);
    const referenced = new Set<string>();
    for (const entry of await repository.listBackups()) {
      if (gone.has(entry.key)) continue;
      await lease.check();
      const manifest = await repository.readManifest(entry.set, entry.name); // unreadable: throws, nothing collected
      for (const record of Object.values(manifest.bands)) for (const id of record.chunks) if (id !== null) referenced.add(id);
    }
    const garbage: string[] = [];
    let bytesFreed = 0;
    let chunksKept = 0;
    for await (const chunk of repository.listChunks()) {
      if (referenced.has(chunk.id)) chunksKept++;
      else {
        garbage.push(chunk.key);
        bytesFreed += chunk.sizeBytes;
      }
    }
    await lease.check(); // still exclusive: no backup started relying on these chunks
    if (options.dryRun !== true) await repository.store.deleteMany(garbage);
    return { sets, chunksDeleted: garbage.length, bytesFreed, chunksKept };
  } finally {
    await lease.release();
  }
}
