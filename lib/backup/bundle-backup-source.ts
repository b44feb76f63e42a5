// Binds a live disk to the backup engine: the frozen point is a temporary snapshot
// (hard links, taken with I/O drained), and changed bands come from the tracker. Asking the
// tracker after the snapshot can only over-report (writes after the point), never under-report.
// The disk is either a SparseBundle this process holds (bundleBackupSource) or, through the
// control channel, one a running `sbm mount` holds (lib/control/remote-backup-source.ts); both go
// through snapshotBackupSource so naming, stale cleanup and token refusals are the same.

import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { isSbmError } from '../errors.js';
import type { SparseBundle } from '../engine/sparse-bundle.js';
import type { BackupSource, ChangedAnswer, FrozenPoint } from './create-backup.js';

/** Temporary snapshots a backup freezes the disk with are named `sbm-backup-<ms>-<hex>`. */
export const BACKUP_SNAPSHOT_PREFIX = 'sbm-backup-';
/** Exit status 10 marks the tracker's "full backup required" refusals. */
const TOKEN_REFUSALS = new Set(['SBM_TOKEN_FOREIGN', 'SBM_TOKEN_STALE', 'SBM_TOKEN_FUTURE', 'SBM_BAD_TOKEN']);

/** What a backup needs of the disk's snapshots and tracker, wherever the disk is held. */
export interface SnapshotHost {
  readonly path: string;
  listSnapshots(): Promise<ReadonlyArray<{ readonly name: string }>>;
  createSnapshot(name: string): Promise<{ readonly path: string; readonly createdAt: string; readonly token: string }>;
  deleteSnapshot(name: string): Promise<void>;
  changedSince(token: string): Promise<{ readonly bands: ReadonlyArray<{ readonly bandIndex: number }> }>;
}

export function bundleBackupSource(bundle: SparseBundle): BackupSource {
  return snapshotBackupSource({
    path: bundle.path,
    listSnapshots: () => bundle.snapshots.list(),
    createSnapshot: (name) => bundle.snapshots.create(name),
    deleteSnapshot: (name) => bundle.snapshots.delete(name),
    changedSince: (token) => bundle.changedSince(token),
  });
}

export function snapshotBackupSource(host: SnapshotHost): BackupSource {
  return {
    path: host.path,
    name: basename(host.path.replace(/\/+$/, '')).replace(/\.(sparsebundle|backupbundle)$/, ''),
    async freeze(): Promise<FrozenPoint> {
      // A killed backup leaves its snapshot behind; it would pin old bands forever. Whoever holds
      // the bundle's write lock runs one backup at a time, except a mount serving several control
      // clients: it refuses (SBM_LOCKED) to delete a snapshot a live client's backup still holds.
      for (const stale of await host.listSnapshots()) {
        if (!stale.name.startsWith(BACKUP_SNAPSHOT_PREFIX)) continue;
        await host.deleteSnapshot(stale.name).catch((error: unknown) => {
          if (!isSbmError(error, 'SBM_LOCKED')) throw error;
        });
      }
      const name = `${BACKUP_SNAPSHOT_PREFIX}${Date.now()}-${randomBytes(3).toString('hex')}`;
      const snapshot = await host.createSnapshot(name);
      return {
        bundlePath: snapshot.path,
        takenAt: new Date(snapshot.createdAt),
        token: snapshot.token,
        release: () => host.deleteSnapshot(name),
      };
    },
    async changedSince(token: string): Promise<ChangedAnswer> {
      try {
        const report = await host.changedSince(token);
        return { kind: 'changed', bands: new Set(report.bands.map((band) => band.bandIndex)) };
      } catch (error) {
        if (isSbmError(error) && TOKEN_REFUSALS.has(error.code)) return { kind: 'refused', reason: error.message };
        throw error;
      }
    },
  };
}
