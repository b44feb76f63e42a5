// Options of SparseBundle.create and SparseBundle.open.

import type { NewBundleEncryption, PasswordSource } from '../bundle/bundle-encryption.js';
import type { WarningSink } from '../warnings.js';

export interface CreateBundleOptions {
  readonly sizeBytes: number;
  readonly bandSizeBytes?: number;
  readonly onWarning?: WarningSink;
  /** Open the new bundle without change tracking (see OpenBundleOptions.untracked). */
  readonly untracked?: boolean;
  /** Encrypt the new bundle (hdiutil's AES-128 / AES-256 sparse-bundle encryption). */
  readonly encryption?: NewBundleEncryption;
}

export interface OpenBundleOptions {
  /**
   * Asked for the password only when the bundle turns out to be encrypted; without it an
   * encrypted bundle is refused with SBM_ENCRYPTED. The password is never stored.
   */
  readonly password?: PasswordSource;
  readonly readOnly?: boolean;
  /**
   * Read-only without taking the lock (qemu-img's --force-share): for looking at a bundle another
   * process is writing. Reads may see writes in progress.
   */
  readonly forceShare?: boolean;
  /**
   * No change tracking: for a bundle still being built under a temporary name (convert, restore),
   * where no token can exist yet. Tracking starts at the first ordinary read-write open, which
   * begins a new epoch; tokens, change reports and snapshots are refused until then.
   */
  readonly untracked?: boolean;
  readonly onWarning?: WarningSink;
  /**
   * Let a read-write open change a backup (a bundle holding .sbm/manifest.json, or inside one),
   * which is otherwise SBM_BACKUP_READ_ONLY (lib/fs/backup-guard.ts): `sbm mount --writable-backup`.
   */
  readonly allowBackupWrites?: boolean;
  /** Upper bound on band files held open at once (default 64, as macOS). */
  readonly maxOpenBands?: number;
  /**
   * Do not list bands/ at open; list it (synchronously) the first time anything asks which bands
   * exist. For short commands that never do (token, changed-bands), so their cost does not grow
   * with the band count. Warnings about stray names in bands/ then come at that first use.
   */
  readonly deferBandListing?: boolean;
}
