// The changed-band tracker of one open bundle. It never under-reports:
//
//   write path    record (generation, band) durable in changes.log  ->  band changes  ->  ack
//                 (first change of a band per generation only; later ones cost nothing)
//   checkpoint    generation + 1 and the log's high-water mark in .sbm/state (atomic) -> stat
//                 the bands sbm touched -> stat-cache (fdatasync) -> token names the closed
//                 generation. The state goes first: a slot may only vouch for records that a
//                 durable mark covers, so a log cut back below the mark is found (start-epoch.ts)
//                 rather than trusted. A clean close writes the mark the same way before its save.
//   reportSince   bands with a record newer than the token  ∪  bands whose stat differs from the
//                 stat-cache without a newer record explaining it (edits behind sbm's back)
//
// A crash anywhere leaves records for every change that may have landed (some for changes that
// did not: over-reporting). On the next read-write open, bands with a record newer than their
// cached stat are re-stated at the next checkpoint, so their crash-time state is not mistaken for
// a foreign edit (only records after the stat cache's trusted log point need this look: see
// stat-cache.ts). A session starts a new generation before its first change record, so writes
// of a session always carry records newer than any stat taken before it.
//
// Foreign edits are found by an audit whose cost is chosen per call:
//   full       stat every band file (listing of bands/ + every band the cache knows): O(bands);
//   directory  stat the bands/ folder only; if its inode, mtime or ctime moved since sbm last
//              saved it, fall back to full. Catches bands created, deleted or renamed over
//              (rsync, cp, editors that save by rename), but NOT in-place rewrites of a band file
//              that sbm did not change since the token: those need a full audit;
//   auto       full when at most AUTO_FULL_AUDIT_MAX_BANDS bands exist, directory otherwise (the
//              count is the engine's listing, or the stat cache's when bands/ was not listed).

import { SbmError, isSbmError } from '../errors.js';
import { STRAYS_REPORTED_ELSEWHERE, listBandFolder } from '../bundle/band-listing.js';
import { inSyncRuns } from '../sync-runs.js';
import type { WarningSink } from '../warnings.js';
import { type ChangeLog, encodeChangeRecord } from './change-log.js';
import { AUTO_FULL_AUDIT_MAX_BANDS, CHANGE_KIND_FOREIGN, CHANGE_KIND_WRITE } from './constants.js';
import { type FileStamp, type LogPoint, type StatCache, sameStamp, slotMatches, stampPath, stampPathSync } from './stat-cache.js';
import type { LogIndex } from './log-index.js';
import { type TrackingState, epochTagOf, nextGeneration, writeTrackingState } from './tracking-state.js';
import { type TrackingToken, formatToken, parseToken, refuseToken } from './tracking-token.js';
import type { AuditMode, ChangeReport, ChangedBand, ReportOptions, TrackerHost } from './tracker-types.js';
import { withSpace } from './tracking-file.js';

export class ChangeTracker {
  /** Per band: the promise of its record in the open generation (shared by concurrent writers). */
  private readonly recorded = new Map<number, Promise<void>>();
  /** Bands whose record for the open generation is durable: their changes need not wait. */
  private readonly durablyRecorded = new Set<number>();
  /** Bands sbm changed (or found changed) since the stat-cache was last saved. */
  private readonly touched = new Set<number>();
  /** The log point every slot on disk covers (see stat-cache.ts), as of the last completed save. */
  private lastComplete: LogPoint | undefined;
  /** A save completed in this session (close need not save again when nothing was touched since). */
  private savedThisSession = false;
  /** The open generation began in this session, after every stat taken so far (see startGeneration). */
  private freshGeneration = false;
  private startingGeneration: Promise<void> | undefined;

  private constructor(
    private readonly host: TrackerHost,
    private state: TrackingState | undefined,
    private readonly unavailableReason: string | undefined,
    private readonly index: LogIndex,
    private readonly cache: StatCache | undefined,
    private readonly log: ChangeLog | undefined,
    private readonly onWarning: WarningSink,
  ) {}

  /** Identity and open generation, for `sbm info` and tests. */
  describe(): { bundleId: string; epochId: string; generation: number; epochStartedAt: string } | undefined {
    const state = this.state;
    return state === undefined
      ? undefined
      : { bundleId: state.bundleId, epochId: state.epochId, generation: state.generation, epochStartedAt: state.epochStartedAt };
  }

  /** Band-change listener: resolves once a record of this band in the open generation is durable. */
  /**
   * True when a change of the band may go ahead without calling beforeChange: its record for the
   * open generation is already durable (and the band is already among the touched ones).
   */
  isDurablyRecorded(bandIndex: number): boolean {
    return this.durablyRecorded.has(bandIndex);
  }

  async beforeChange(bandIndex: number, kind = CHANGE_KIND_WRITE): Promise<void> {
    this.writableParts();
    if (!this.freshGeneration) await this.startGeneration();
    const { state, log } = this.writableParts();
    this.touched.add(bandIndex);
    let durable = this.recorded.get(bandIndex);
    if (durable === undefined) {
      const generation = state.generation;
      durable = log.append(encodeChangeRecord(epochTagOf(state.epochId), generation, bandIndex, kind)).then(() => {
        this.index.note(bandIndex, generation);
        // Still this generation's record (a checkpoint clears the map): later changes may skip waiting.
        if (this.recorded.get(bandIndex) === durable) this.durablyRecorded.add(bandIndex);
      });
      this.recorded.set(bandIndex, durable);
      // A failed append must not be remembered as done: the next change retries it.
      durable.catch(() => {
        if (this.recorded.get(bandIndex) === durable) this.recorded.delete(bandIndex);
      });
    }
    await durable;
  }

  /**
   * Closes the open generation and returns its token. The caller holds the I/O gate exclusively
   * and has flushed the bands, so the token names a durable point. `restamp` adds bands whose
   * stat changed for reasons that are not content changes (a snapshot linked them).
   */
  async checkpoint(restamp: Iterable<number> = []): Promise<string> {
    const { state, log } = this.writableParts();
    const closed = state.generation;
    // The state (with the log's high-water mark) goes first: stat-cache slots may only vouch for
    // records a durable mark covers, or a log cut back to an older mark would hide their bands.
    const next = { ...nextGeneration(state, Date.now()), logMark: log.point() ?? state.logMark };
    await this.writeState(next);
    this.state = next;
    this.freshGeneration = true;
    this.recorded.clear();
    this.durablyRecorded.clear();
    await this.saveStamps(restamp, closed);
    return formatToken({ bundleId: state.bundleId, epochId: state.epochId, generation: closed });
  }

  /**
   * Stats bands about to have their inode's metadata changed by sbm itself (a hard link added or
   * removed) and records those that already differ from the cache as foreign, so the restamp at
   * the next checkpoint cannot hide an edit made behind sbm's back.
   */
  async auditBeforeRestamp(bands: Iterable<number>): Promise<number[]> {
    const foreign: number[] = [];
    await inSyncRuns([...bands], (bandIndex) => {
      if (this.isForeign(bandIndex, stampPathSync(this.host.bandPath(bandIndex)))) foreign.push(bandIndex);
    });
    await this.recordForeign(foreign);
    return foreign;
  }

  /** Turns `--since` text (a token) into a token; throws a refusal when it cannot be honoured. */
  checkToken(text: string): TrackingToken {
    const token = parseToken(text);
    const state = this.state;
    if (state === undefined) {
      throw new SbmError(
        'SBM_TOKEN_FOREIGN',
        `this bundle has no sbm change history (${this.unavailableReason ?? 'never opened read-write by sbm'}); full backup required`,
        {
          token: text,
        },
      );
    }
    if (this.unavailableReason !== undefined && token.bundleId === state.bundleId) {
      throw new SbmError('SBM_TOKEN_STALE', `change history cannot be used: ${this.unavailableReason}; full backup required`, {
        token: text,
      });
    }
    const refusal = refuseToken(
      token,
      { bundleId: state.bundleId, epochId: state.epochId, openGeneration: state.generation },
      state.resetReason,
    );
    if (refusal !== undefined) throw refusal;
    return token;
  }

  /** The token covering every change made at or after `timeMs`. */
  tokenForTime(timeMs: number): string {
    const state = this.requireState();
    const started = Date.parse(state.epochStartedAt);
    if (timeMs < started) {
      throw new SbmError(
        'SBM_TOKEN_STALE',
        `${new Date(timeMs).toISOString()} is before change tracking began (${state.epochStartedAt}); full backup required`,
        {
          time: timeMs,
        },
      );
    }
    let generation = 0; // older than the kept start times: every record counts (over-reports)
    for (const [candidate, startMs] of state.generationStarts) if (startMs <= timeMs) generation = candidate - 1;
    return formatToken({ bundleId: state.bundleId, epochId: state.epochId, generation: Math.max(0, generation) });
  }

  /** Bands changed since `sinceText`; read-write trackers also close the generation (new token). */
  async reportSince(sinceText: string, options: ReportOptions = {}): Promise<ChangeReport> {
    const since = this.checkToken(sinceText);
    const reported = new Set<number>(this.index.bandsNewerThan(since.generation));
    const audit = await this.audit(options.audit ?? 'auto', reported);
    for (const bandIndex of audit.foreign) reported.add(bandIndex);
    if (audit.foreign.length > 0) {
      const names = audit.foreign.slice(0, 8).map((bandIndex) => `bands/${bandIndex.toString(16)}`);
      (options.onWarning ?? this.onWarning)({
        code: 'SBM_FOREIGN_CHANGE',
        message:
          `${audit.foreign.length} band(s) changed behind sbm's back ` +
          `(${names.join(', ')}${audit.foreign.length > 8 ? ', ...' : ''}); included`,
        data: { bands: audit.foreign },
      });
      if (this.log !== undefined) await this.recordForeign(audit.foreign);
    }
    const foreign = new Set(audit.foreign);
    const bands: ChangedBand[] = [];
    const order = [...reported].sort((a, b) => a - b);
    const stamps = new Map<number, FileStamp | undefined>();
    await inSyncRuns(order, (bandIndex) => {
      stamps.set(bandIndex, audit.stamps.has(bandIndex) ? audit.stamps.get(bandIndex) : stampPathSync(this.host.bandPath(bandIndex)));
    });
    let totalBytes = 0;
    for (const bandIndex of order) {
      const offset = bandIndex * this.host.bandSizeBytes;
      const length = Math.max(0, Math.min(this.host.bandSizeBytes, this.host.sizeBytes - offset));
      totalBytes += length;
      bands.push({
        bandIndex,
        path: this.host.bandPath(bandIndex),
        relativePath: `bands/${bandIndex.toString(16)}`,
        deleted: stamps.get(bandIndex) === undefined,
        foreign: foreign.has(bandIndex),
        offset,
        length,
      });
    }
    const token = this.log === undefined ? undefined : await this.checkpoint();
    return { since: formatToken(since), token, bands, totalBytes, audit: audit.kind };
  }

  /** Saves the stat of touched bands (clean close); nothing when a save this session already did. */
  async close(): Promise<void> {
    const unsaved = !this.savedThisSession || this.touched.size > 0;
    try {
      if (this.log !== undefined && this.state !== undefined && unsaved && (await this.markLog()))
        await this.saveStamps([], this.state.generation);
    } catch (error) {
      // A full filesystem: the records are durable, only the stat save is skipped, so the next
      // open restats those bands (over-reporting at worst). Closing must not fail for it.
      if (!isSbmError(error, 'SBM_NO_SPACE')) throw error;
    } finally {
      await this.log?.close();
      await this.cache?.close();
    }
  }

  /** Writes the state again when the log grew past its mark; false when there was no room (slots must then not be saved). */
  private async markLog(): Promise<boolean> {
    const { state, log } = this.writableParts();
    const point = log.point();
    if (point === undefined || (state.logMark?.bytes === point.bytes && state.logMark.crc === point.crc)) return true;
    const marked = { ...state, logMark: point };
    try {
      await this.writeState(marked);
    } catch (error) {
      if (isSbmError(error, 'SBM_NO_SPACE')) return false;
      throw error;
    }
    this.state = marked;
    return true;
  }

  private writeState(state: TrackingState): Promise<void> {
    return withSpace(this.host.paths.sbm, 'save the change-tracking state', () =>
      writeTrackingState(this.host.paths.sbm, this.host.paths.tmp, state),
    );
  }

  private async audit(
    mode: AuditMode,
    skip: ReadonlySet<number>,
  ): Promise<{ kind: 'full' | 'directory'; foreign: number[]; stamps: Map<number, FileStamp | undefined> }> {
    const stamps = new Map<number, FileStamp | undefined>();
    const cache = this.requireCache();
    // auto: when the engine has not listed bands/ (deferred listing), the stat cache's count of
    // present bands stands in; it is exact unless bands/ changed, and then the directory audit
    // below falls back to full anyway.
    let full = mode === 'full' || (mode === 'auto' && (this.host.presentBandCount() ?? cache.presentCount()) <= AUTO_FULL_AUDIT_MAX_BANDS);
    if (!full) full = !sameDirStamp(cache.dirStamp, await stampPath(this.host.paths.bands));
    if (!full) return { kind: 'directory', foreign: [], stamps };
    const candidates = new Set<number>(cache.presentBands());
    const listed = await listBandFolder(this.host.paths.bands, this.host.bandCount, STRAYS_REPORTED_ELSEWHERE).catch(() => undefined);
    for (const bandIndex of listed ?? []) candidates.add(bandIndex);
    const foreign: number[] = [];
    await inSyncRuns([...candidates], (bandIndex) => {
      if (skip.has(bandIndex)) return;
      const stamp = stampPathSync(this.host.bandPath(bandIndex));
      stamps.set(bandIndex, stamp);
      if (this.isForeign(bandIndex, stamp)) foreign.push(bandIndex);
    });
    foreign.sort((a, b) => a - b);
    return { kind: 'full', foreign, stamps };
  }

  private isForeign(bandIndex: number, stamp: FileStamp | undefined): boolean {
    const slot = this.requireCache().slot(bandIndex);
    if (slotMatches(slot, stamp)) return false;
    // A record newer than the cached stat means sbm changed the band after that stat was taken.
    return (this.index.latestOf(bandIndex) ?? -1) <= slot.statGeneration;
  }

  private async recordForeign(bands: readonly number[]): Promise<void> {
    if (this.log === undefined) return;
    for (const bandIndex of bands) await this.beforeChange(bandIndex, CHANGE_KIND_FOREIGN);
  }

  private async saveStamps(restamp: Iterable<number>, statGeneration: number): Promise<void> {
    const cache = this.requireCache();
    const bands = new Set(this.touched);
    // Bands restamped without a new record are not re-checked by an open that trusts the log
    // point, so their slots must be durable before any header names a point: clear it first.
    let distrustFirst = false;
    for (const bandIndex of restamp) {
      if (!bands.has(bandIndex)) distrustFirst = true;
      bands.add(bandIndex);
    }
    const entries = new Map<number, FileStamp | undefined>();
    await inSyncRuns([...bands], (bandIndex) => {
      entries.set(bandIndex, stampPathSync(this.host.bandPath(bandIndex)));
    });
    const point = this.log?.point();
    const logBandsAtLeast = Math.max(cache.logBandsAtLeast, this.index.distinctBandsIfKnown() ?? this.index.recentEntries.size);
    // A save that writes slots and header together can only vouch for the previous save's point;
    // once its fdatasync returns, this save's point is the one every slot covers. A save with no
    // slot to write (every logged band's slot was found current) or one whose slots are durable
    // before its header (distrustFirst) vouches for the current point at once.
    const dirStamp = await stampPath(this.host.paths.bands);
    await withSpace(this.host.paths.sbm, 'save the stat cache', () =>
      cache.save(entries, dirStamp, statGeneration, {
        logTrusted: distrustFirst || entries.size === 0 ? point : this.lastComplete,
        logBandsAtLeast,
        distrustFirst,
      }),
    );
    this.lastComplete = point;
    this.savedThisSession = true;
    this.touched.clear();
  }

  /**
   * Starts a new generation (durably) before the session's first change record, so every record
   * of this session is newer than any stat taken before it (earlier sessions' saves included).
   * Done on first need rather than at open: a session that only asks (token, changed-bands)
   * then writes .sbm/state once, at its checkpoint.
   */
  private startGeneration(): Promise<void> {
    this.startingGeneration ??= (async () => {
      const state = this.requireState();
      const next = { ...nextGeneration(state, Date.now()), logMark: this.log?.point() ?? state.logMark };
      try {
        await this.writeState(next);
        this.state = next;
      } catch (error) {
        // A full filesystem, even after the reserve: record this session's changes under the open
        // generation instead. Every token issued names a generation below it, so its records are
        // still reported to every token; the cost is that a band whose stat was saved in this
        // generation may later be reported as a foreign change too (over-reporting). A trim, which
        // frees space, must not fail because the state could not be rewritten.
        if (!isSbmError(error, 'SBM_NO_SPACE')) throw error;
      }
      this.freshGeneration = true;
    })().finally(() => {
      this.startingGeneration = undefined; // a failure is retried by the next change
    });
    return this.startingGeneration;
  }

  private writableParts(): { state: TrackingState; log: ChangeLog } {
    if (this.log === undefined || this.state === undefined)
      throw new SbmError('SBM_READ_ONLY', `bundle ${this.host.paths.root} is open read-only`);
    return { state: this.state, log: this.log };
  }

  private requireState(): TrackingState {
    if (this.state === undefined) {
      throw new SbmError('SBM_TOKEN_FOREIGN', `${this.host.paths.root} has no sbm change history; full backup required`);
    }
    return this.state;
  }

  private requireCache(): StatCache {
    if (this.cache === undefined)
      throw new SbmError('SBM_TOKEN_STALE', `${this.host.paths.root}: stat cache missing; full backup required`);
    return this.cache;
  }

  /** Used by open helpers only. */
  static build(
    host: TrackerHost,
    state: TrackingState | undefined,
    unavailableReason: string | undefined,
    index: LogIndex,
    cache: StatCache | undefined,
    log: ChangeLog | undefined,
    onWarning: WarningSink,
    touched: Iterable<number> = [],
    lastComplete: LogPoint | undefined = undefined,
  ): ChangeTracker {
    const tracker = new ChangeTracker(host, state, unavailableReason, index, cache, log, onWarning);
    for (const bandIndex of touched) tracker.touched.add(bandIndex);
    tracker.lastComplete = lastComplete;
    return tracker;
  }
}

function sameDirStamp(saved: FileStamp | undefined, now: FileStamp | undefined): boolean {
  if (saved === undefined || now === undefined) return false;
  return sameStamp({ ...saved, size: 0 }, { ...now, size: 0 });
}
