// The operations `sbm backup|token|changed-bands|snapshot` need of a read-write bundle, behind one
// interface: localOperations() runs them through a BundleSession over a bundle this process
// opened; ControlClient asks the `sbm mount` process that holds the bundle to run them (the server
// side dispatches to localOperations of its own bundle). The CLI commands take a BundleOperations
// and do not care which.

import { bundleBackupSource } from '../backup/bundle-backup-source.js';
import type { BackupSource } from '../backup/create-backup.js';
import type { SparseBundle } from '../engine/sparse-bundle.js';
import { BundleSession, type ChangedBandsResult } from '../session/bundle-session.js';
import type { SnapshotInfo } from '../snapshots/snapshot-manager.js';
import type { AuditMode } from '../tracking/tracker-types.js';
import { SbmError } from '../errors.js';
import type { WarningSink } from '../warnings.js';

export interface BundleOperations {
  /** The bundle path as this process names it. */
  readonly path: string;
  /** True when the work is done by a running `sbm mount`. */
  readonly remote: boolean;
  token(): Promise<string>;
  /**
   * BundleSession.changedBandsSince: `since` is a token, a snapshot name or an ISO-8601 time.
   * Warnings go to `onWarning` when given, else to the sink the bundle was opened with.
   */
  changedBandsSince(since: string, audit?: AuditMode, onWarning?: WarningSink): Promise<ChangedBandsResult>;
  snapshotCreate(name: string): Promise<SnapshotInfo>;
  snapshotList(): Promise<SnapshotInfo[]>;
  snapshotDelete(name: string): Promise<void>;
  /** `onProgress` is told after each band when the bundle is held here (not through a mount). */
  snapshotRevert(
    name: string,
    onProgress?: (progress: { bandsDone: number; bandsTotal: number }) => void,
  ): Promise<{ bandsChanged: number }>;
  backupSource(): BackupSource;
  /** The disk's geometry now (sync). */
  geometry(): Promise<{ sizeBytes: number; bandSizeBytes: number }>;
  /** Block I/O through the engine that holds the bundle (sync); at most MAX_IO_BYTES per read or write. */
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Uint8Array): Promise<void>;
  zero(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  /** Grows the disk (never shrinks: SBM_INVALID_ARGUMENT). */
  grow(sizeBytes: number): Promise<void>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Operations on a bundle this process holds; close() closes the bundle only when `owned`. */
export function localOperations(bundle: SparseBundle, options: { owned: boolean }): BundleOperations {
  const session = new BundleSession(bundle);
  const close = async (): Promise<void> => {
    if (options.owned) await bundle.close();
  };
  return {
    path: bundle.path,
    remote: false,
    token: () => session.token(),
    changedBandsSince: (since, audit, onWarning) =>
      session.changedBandsSince(since, { ...(audit === undefined ? {} : { audit }), ...(onWarning === undefined ? {} : { onWarning }) }),
    snapshotCreate: (name) => session.snapshots.create(name),
    snapshotList: () => session.snapshots.list(),
    snapshotDelete: (name) => session.snapshots.delete(name),
    snapshotRevert: (name, onProgress) => session.snapshots.revert(name, onProgress),
    backupSource: () => bundleBackupSource(bundle),
    geometry: async () => ({ sizeBytes: bundle.sizeBytes, bandSizeBytes: bundle.bandSizeBytes }),
    read: (offset, length) => bundle.read(offset, length),
    write: (offset, data) => bundle.write(offset, data),
    zero: (offset, length) => bundle.trim(offset, length),
    flush: () => bundle.flush(),
    grow: async (sizeBytes) => {
      if (sizeBytes < bundle.sizeBytes)
        throw new SbmError('SBM_INVALID_ARGUMENT', `grow to ${sizeBytes} bytes would shrink ${bundle.path} (${bundle.sizeBytes} bytes)`);
      await session.resize(sizeBytes);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
