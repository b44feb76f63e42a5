// A BackupSource for a bundle a running `sbm mount` holds: the frozen point is a snapshot the
// mount takes (with its I/O drained), read here straight from <bundle>/.sbm/snapshots/.
// Naming, stale cleanup and token refusals are shared with the local source.

import { snapshotBackupSource } from '../backup/bundle-backup-source.js';
import type { BackupSource } from '../backup/create-backup.js';
import { isSbmError } from '../errors.js';
import type { BundleOperations } from './bundle-operations.js';

export function remoteBackupSource(client: BundleOperations, bundlePath: string): BackupSource {
  return snapshotBackupSource({
    path: bundlePath,
    listSnapshots: () => client.snapshotList(),
    createSnapshot: (name) => client.snapshotCreate(name),
    deleteSnapshot: (name) =>
      client.snapshotDelete(name).catch((error: unknown) => {
        // The mount stopped after the backup read its snapshot: the backup is complete; the
        // snapshot stays until the next backup's stale cleanup.
        if (!isSbmError(error, 'SBM_CONTROL')) throw error;
      }),
    changedBands: async (token) => (await client.changedBandsSince(token)).report,
  });
}
