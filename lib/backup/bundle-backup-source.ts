// Binds a live SparseBundle to the backup engine: the frozen point is a temporary snapshot
// (hard links, taken with I/O drained), and changed bands come from the tracker. Asking the
// tracker after the snapshot can only over-report (writes after the point), never under-report.

import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { isSbmError } from '../errors.js';
import type { SparseBundle } from '../engine/sparse-bundle.js';
import type { BackupSource, ChangedAnswer, FrozenPoint } from './create-backup.js';

/** Exit status 10 marks the tracker's "full backup required" refusals. */
const SNAPSHOT_PREFIX = 'sbm-backup-';
const TOKEN_REFUSALS = new Set(['SBM_TOKEN_FOREIGN', 'SBM_TOKEN_STALE', 'SBM_TOKEN_FUTURE', 'SBM_BAD_TOKEN']);

export function bundleBackupSource(bundle: SparseBundle): BackupSource {
  return {
    path: bundle.path,
    name: basename(bundle.path).replace(/\.(sparsebundle|backupbundle)$/, ''),
    async freeze(): Promise<FrozenPoint> {
      // A killed backup leaves its snapshot behind; it would pin old bands forever. We hold the
      // bundle's write lock, so no other backup of this bundle is running.
      for (const stale of await bundle.snapshots.list()) {
        if (stale.name.startsWith(SNAPSHOT_PREFIX)) await bundle.snapshots.delete(stale.name);
      }
      const name = `${SNAPSHOT_PREFIX}${Date.now()}-${randomBytes(3).toString('hex')}`;
      const snapshot = await bundle.snapshots.create(name);
      return {
        bundlePath: snapshot.path,
        takenAt: new Date(snapshot.createdAt),
        token: snapshot.token,
        release: () => bundle.snapshots.delete(name),
      };
    },
    async changedSince(token: string): Promise<ChangedAnswer> {
      try {
        const report = await bundle.changedSince(token);
        return { kind: 'changed', bands: new Set(report.bands.map((band) => band.bandIndex)) };
      } catch (error) {
        if (isSbmError(error) && TOKEN_REFUSALS.has(error.code)) return { kind: 'refused', reason: error.message };
        throw error;
      }
    },
  };
}
