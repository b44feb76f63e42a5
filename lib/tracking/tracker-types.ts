// The shapes the change tracker shares with its host (the engine), its openers and the sessions
// that ask it: kept apart from the tracker class so the open helpers and the epoch start-up
// depend on these, not on the tracker itself.

import type { BundlePaths } from '../bundle/bundle-paths.js';
import type { WarningSink } from '../warnings.js';

export type AuditMode = 'auto' | 'full' | 'directory';

/** What the tracker needs from the bundle it serves. */
export interface TrackerHost {
  readonly paths: BundlePaths;
  readonly bandSizeBytes: number;
  readonly sizeBytes: number;
  readonly bandCount: number;
  bandPath(bandIndex: number): string;
  /** Number of band files the engine knows of, or undefined when it has not listed them yet. */
  presentBandCount(): number | undefined;
}

export interface ChangedBand {
  readonly bandIndex: number;
  readonly path: string;
  /** Path relative to the bundle folder: bands/<hex>. */
  readonly relativePath: string;
  /** The band file no longer exists (trimmed, deleted, cut by a shrink): a mirror should delete it. */
  readonly deleted: boolean;
  /** The change was made behind sbm's back (found by the stat audit). */
  readonly foreign: boolean;
  /** Virtual byte range the band covers. */
  readonly offset: number;
  readonly length: number;
}

export interface ChangeReport {
  /** The token the changes are relative to. */
  readonly since: string;
  /** Token of now, for the next call (undefined when the bundle is open read-only). */
  readonly token: string | undefined;
  readonly bands: ChangedBand[];
  readonly totalBytes: number;
  readonly audit: 'full' | 'directory';
}

export interface ReportOptions {
  readonly audit?: AuditMode;
  /** Where this call's warnings go instead of the tracker's sink (a request from another process). */
  readonly onWarning?: WarningSink;
}

export interface OpenOptions {
  readonly host: TrackerHost;
  readonly readOnly: boolean;
  readonly onWarning: WarningSink;
}
