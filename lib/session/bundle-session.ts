// BundleSession: the quiet-point operations over one open bundle, above the engine, the tracker
// and the snapshots: tokens, changed-band reports (and resolving `--since`), snapshots and
// resizing. Each runs at a point the engine makes quiet (withQuiescedIo), so a token and the
// state it names are one moment. lib/control/ offers the same operations of a bundle another
// process (`sbm mount`) holds; its server side runs them through a session of its bundle.
//
//   token            drain + flush -> tracker checkpoint -> token of the closed generation
//   changedBands     drain + flush -> tracker report since a token -> checkpoint (token of now)
//   changedBandsSince  resolve a token, snapshot name or time, then changedBands
//   snapshots        create / list / delete / revert (lib/snapshots/)
//   resize           the engine's geometry change (bands past a smaller end are cut, recorded)

import { SbmError } from '../errors.js';
import type { SparseBundle } from '../engine/sparse-bundle.js';
import { SnapshotManager } from '../snapshots/snapshot-manager.js';
import type { ChangeReport, ReportOptions } from '../tracking/tracker-types.js';
import { type ResolvedSince, resolveSince } from './resolve-since.js';
import { debugLog } from '../debug-log.js';

const debug = debugLog('sbm:changed-bands');

/** A change report for `--since` text, with what the text was taken as. */
export interface ChangedBandsResult {
  readonly sinceKind: ResolvedSince['kind'];
  readonly bandSizeBytes: number;
  readonly report: ChangeReport;
}

export class BundleSession {
  /** Copy-on-write snapshots under .sbm/snapshots/. */
  readonly snapshots: SnapshotManager;

  constructor(readonly bundle: SparseBundle) {
    this.snapshots = new SnapshotManager(bundle);
  }

  get path(): string {
    return this.bundle.path;
  }

  /** Closes the current change-tracking generation; the token names this point (after a flush). */
  async token(): Promise<string> {
    this.assertWritable();
    const tracker = this.bundle.changeTracker;
    return this.bundle.withQuiescedIo(() => tracker.checkpoint());
  }

  /**
   * Bands changed since `token` plus a token of now, taken at the same quiet point so a backup
   * loop never misses a write. Refuses foreign, stale and future tokens (exit 10).
   */
  async changedBands(token: string, options: ReportOptions = {}): Promise<ChangeReport> {
    const tracker = this.bundle.changeTracker;
    return this.bundle.withQuiescedIo(() => tracker.reportSince(token, options));
  }

  /** `since` as `--since` takes it: a token, a snapshot name or an ISO-8601 time. */
  resolveSince(since: string): Promise<ResolvedSince> {
    return resolveSince(this.bundle, this.snapshots, since);
  }

  /** changedBands for `--since` text (resolveSince), with what the text named. */
  async changedBandsSince(since: string, options: ReportOptions = {}): Promise<ChangedBandsResult> {
    const resolved = await this.resolveSince(since);
    debug('changed-bands since %s: a %s, token %s', since, resolved.kind, resolved.token);
    const report = await this.changedBands(resolved.token, options);
    debug('changed-bands: %d band(s), next token %s', report.bands.length, report.token ?? 'none');
    return { sinceKind: resolved.kind, bandSizeBytes: this.bundle.bandSizeBytes, report };
  }

  /** Grows or shrinks the disk. Shrinking deletes or cuts the bands past the new end. */
  async resize(newSizeBytes: number): Promise<void> {
    await this.bundle.setSizeBytes(newSizeBytes);
  }

  private assertWritable(): void {
    if (this.bundle.readOnly) throw new SbmError('SBM_READ_ONLY', `bundle ${this.bundle.path} is open read-only`);
  }
}
