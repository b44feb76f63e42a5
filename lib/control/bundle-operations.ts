// The operations `sbm backup|token|changed-bands|snapshot` need of a read-write bundle, behind one
// interface: localOperations() runs them on a SparseBundle this process opened; ControlClient
// asks the `sbm mount` process that holds the bundle to run them (the server side dispatches to
// localOperations of its own bundle). The CLI commands take a BundleOperations and do not care.

import { bundleBackupSource } from '../backup/bundle-backup-source.js';
import type { BackupSource } from '../backup/create-backup.js';
import type { SparseBundle } from '../engine/sparse-bundle.js';
import { resolveSince } from '../snapshots/resolve-since.js';
import type { SnapshotInfo } from '../snapshots/snapshot-manager.js';
import type { AuditMode, ChangeReport } from '../tracking/change-tracker.js';
import type { WarningSink } from '../warnings.js';

export interface ChangedSinceResult {
  readonly sinceKind: 'token' | 'snapshot' | 'time';
  readonly bandSizeBytes: number;
  readonly report: ChangeReport;
}

export interface BundleOperations {
  /** The bundle path as this process names it. */
  readonly path: string;
  /** True when the work is done by a running `sbm mount`. */
  readonly remote: boolean;
  token(): Promise<string>;
  /**
   * `since` is a token, a snapshot name or an ISO-8601 time (resolveSince). Warnings go to
   * `onWarning` when given, else to the sink the bundle was opened with.
   */
  changedSince(since: string, audit?: AuditMode, onWarning?: WarningSink): Promise<ChangedSinceResult>;
  snapshotCreate(name: string): Promise<SnapshotInfo>;
  snapshotList(): Promise<SnapshotInfo[]>;
  snapshotDelete(name: string): Promise<void>;
  snapshotRevert(name: string): Promise<{ bandsChanged: number }>;
  backupSource(): BackupSource;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Operations on a bundle this process holds; close() closes the bundle only when `owned`. */
export function localOperations(bundle: SparseBundle, options: { owned: boolean }): BundleOperations {
  const close = async (): Promise<void> => {
    if (options.owned) await bundle.close();
  };
  return {
    path: bundle.path,
    remote: false,
    token: () => bundle.token(),
    async changedSince(since, audit, onWarning) {
      const resolved = await resolveSince(bundle, since);
      const report = await bundle.changedSince(resolved.token, { ...(audit === undefined ? {} : { audit }), ...(onWarning === undefined ? {} : { onWarning }) });
      return { sinceKind: resolved.kind, bandSizeBytes: bundle.bandSizeBytes, report };
    },
    snapshotCreate: (name) => bundle.snapshots.create(name),
    snapshotList: () => bundle.snapshots.list(),
    snapshotDelete: (name) => bundle.snapshots.delete(name),
    snapshotRevert: (name) => bundle.snapshots.revert(name),
    backupSource: () => bundleBackupSource(bundle),
    close,
    [Symbol.asyncDispose]: close,
  };
}
