// The package's public entry (`import { SparseBundle } from 'sbm'`). It re-exports lib/ and
// formats/, so it lives outside both: lib/ imports nothing of formats/, and this composition
// root, like cli/, may import either.

export type { BlockDevice, Extent, ExtentKind, WriteOptions } from '../lib/block-device.js';
export { ERROR_CODES, isSbmError, SbmError } from '../lib/errors.js';
export type { ErrorCodeInfo, SbmErrorCode } from '../lib/errors.js';
export type { SbmWarning, WarningSink } from '../lib/warnings.js';
export { formatSize, parseSize } from '../lib/size.js';

export { SparseBundle } from '../lib/engine/sparse-bundle.js';
export type { CreateBundleOptions, OpenBundleOptions } from '../lib/engine/sparse-bundle.js';
export { checkBundle } from '../lib/bundle/check-bundle.js';
export type { CheckFinding, CheckReport } from '../lib/bundle/check-bundle.js';

export { BundleSession } from '../lib/session/bundle-session.js';
export type { ChangedBandsResult } from '../lib/session/bundle-session.js';
export { compactBundle } from '../lib/session/compact.js';
export type { CompactResult } from '../lib/session/compact.js';
export { SnapshotManager } from '../lib/snapshots/snapshot-manager.js';
export type { SnapshotInfo, SnapshotMeta } from '../lib/snapshots/snapshot-manager.js';

export { formatToken, parseToken } from '../lib/tracking/tracking-token.js';
export type { TrackingToken } from '../lib/tracking/tracking-token.js';
export type { AuditMode, ChangedBand, ChangeReport } from '../lib/tracking/tracker-types.js';

export { copyDevice } from '../lib/copy-device.js';
export type { CopyOptions, CopyProgress, CopyResult } from '../lib/copy-device.js';
export { convertToBundle } from '../lib/convert/convert-to-bundle.js';
export type { ConvertOptions, ConvertResult } from '../lib/convert/convert-to-bundle.js';
export { serveNbd } from '../lib/nbd/serve-nbd.js';
export type { NbdServerHandle, NbdServerStats, ServeNbdOptions } from '../lib/nbd/serve-nbd.js';

export { createBackup } from '../lib/backup/create-backup.js';
export type { BackupOptions, BackupResult, BackupSource } from '../lib/backup/create-backup.js';
export { bundleBackupSource } from '../lib/backup/bundle-backup-source.js';
export type { BundleBackupSourceOptions } from '../lib/backup/bundle-backup-source.js';
export { overwriteBundle } from '../lib/backup/restore-backup.js';
export type { OverwriteResult } from '../lib/backup/restore-backup.js';
export { describeBackups, verifyBackups } from '../lib/backup/backup-catalog.js';
export type { BackupSummary, VerifyReport } from '../lib/backup/backup-catalog.js';
export { thinBackups } from '../lib/backup/thin-backups.js';
export type { ThinOptions, ThinPolicy, ThinResult } from '../lib/backup/thin-backups.js';
export { diffBackups } from '../lib/backup/backup-diff.js';
export type { BackupDiff } from '../lib/backup/backup-diff.js';

export { detectFormat, identifyImage, openImage } from '../formats/index.js';
export type { ImageReader, OpenImageOptions } from '../formats/index.js';
