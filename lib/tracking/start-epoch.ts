// Read-write open of the tracker's files: reuse the epoch when state, log and stat-cache agree
// and the bundle folder is the one the epoch began in; otherwise start a new epoch.
//
// New epoch (crash-safe order; the state file is the commit point):
//   1. stat every band -> .sbm/tmp/stat-cache.* (new epoch tag), fsync, rename to .sbm/stat-cache
//   2. empty log       -> .sbm/tmp/changes.log.*, fsync, rename to .sbm/changes.log, fsync .sbm
//   3. state (new epoch id, generation 1) -> atomic replace of .sbm/state
// A crash before 3 leaves the old state naming an epoch whose cache no longer matches it, so
// the next open starts a new epoch again. Tokens of the old epoch are refused (full backup).
//
// Lost tracking, besides a missing or damaged state: a change log or stat cache that is missing,
// damaged, not a regular file or absurdly large, and a log that no longer starts with the bytes
// the state's high-water mark names (deleted, truncated, rolled back, overwritten: records
// of acknowledged changes may be gone, so answering from it could under-report).

import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { randomTag } from '../fs/temp-name.js';
import { STRAYS_REPORTED_ELSEWHERE, listBandFolder } from '../bundle/band-listing.js';
import { fsyncDirectory } from '../fs/atomic-write.js';
import { inSyncRuns } from '../sync-runs.js';
import type { WarningSink } from '../warnings.js';
import { ChangeLog, type LogScan, encodeChangeRecord, logCrc, scanChangeLog } from './change-log.js';
import { LogIndex } from './log-index.js';
import type { TrackerHost } from './tracker-types.js';
import { CHANGE_LOG_FILE, COMPACT_MIN_RECORDS, STAT_CACHE_FILE } from './constants.js';
import { type FileStamp, StatCache, stampPath, stampPathSync, statCacheMaxBytes } from './stat-cache.js';
import { SbmError } from '../errors.js';
import { isNoSpace, removeIfNotFile, withSpace } from './tracking-file.js';
import { type TrackingState, epochTagOf, folderIdentity, newEpochState, readTrackingState, writeTrackingState } from './tracking-state.js';

export interface OpenedEpoch {
  readonly state: TrackingState;
  readonly scan: LogScan;
  readonly cache: StatCache;
}

export async function startEpoch(host: TrackerHost, onWarning: WarningSink): Promise<OpenedEpoch> {
  const { sbm } = host.paths;
  const logPath = join(sbm, CHANGE_LOG_FILE);
  const read = await readTrackingState(sbm);
  const folder = await folderIdentity(host.paths.root);
  let reason: string;
  let bundleId: string | undefined;
  if (read.kind === 'missing') {
    reason = 'first read-write open by sbm';
  } else if (read.kind === 'damaged') {
    reason = `tracking state damaged (${read.reason})`;
  } else {
    const state = read.state;
    bundleId = state.bundleId;
    const tag = epochTagOf(state.epochId);
    const cache = await StatCache.load(join(sbm, STAT_CACHE_FILE), tag, true, statCacheMaxBytes(host.bandCount));
    const log = await ChangeLog.read(logPath);
    const scan = scanChangeLog(log.bytes, tag, cache?.logTrusted, state.logMark);
    if (folder.dev !== state.folder.dev || folder.ino !== state.folder.ino) {
      reason = 'the bundle folder was copied, moved to another filesystem or restored';
    } else if (log.problem !== undefined) {
      reason = log.problem;
    } else if (scan.damaged) {
      reason = 'change log damaged';
    } else if (!scan.markHeld) {
      reason = LOG_BEHIND_MARK;
    } else if (cache === undefined) {
      reason = 'stat cache missing or damaged';
    } else if (stateBehind(state, scan, cache)) {
      reason = STATE_BEHIND;
    } else {
      const compacted = await compactIfLarge(host, logPath, scan, tag, cache.logBandsAtLeast);
      if (compacted === scan) return { state, scan, cache };
      // The rewritten log is what the mark must name from now on.
      const marked = { ...state, logMark: { bytes: compacted.validBytes, crc: compacted.validCrc } };
      await withSpace(sbm, 'save the change-tracking state', () => writeTrackingState(sbm, host.paths.tmp, marked));
      return { state: marked, scan: compacted, cache };
    }
    await cache?.close();
  }
  if (read.kind !== 'missing') {
    onWarning({
      code: 'SBM_TRACKING_RESET',
      message: `change tracking of ${host.paths.root} restarted: ${reason}; earlier tokens now require a full backup`,
      data: { reason },
    });
  }
  const state = newEpochState(bundleId, folder, Date.now(), read.kind === 'missing' ? undefined : reason);
  const tag = epochTagOf(state.epochId);
  await withSpace(sbm, 'start a new change-tracking epoch', async () => {
    await writeBaseline(host, tag, state.generation);
    await ChangeLog.rewrite(logPath, host.paths.tmp, Buffer.alloc(0));
    await writeTrackingState(sbm, host.paths.tmp, state);
  });
  const cache = await StatCache.load(join(sbm, STAT_CACHE_FILE), tag, true);
  if (cache === undefined) throw new SbmError('SBM_INTERNAL', 'stat cache written but not readable');
  return { state, scan: emptyScan(new Map()), cache };
}

/** Why a state older than the log or the stat cache (rolled back) is not trusted. */
export const STATE_BEHIND = 'tracking state is older than the change log or stat cache (rolled back)';

/**
 * Records are never written above the state's generation, and the stat cache is saved after the
 * state it follows: anything newer means the state went back in time, and generations it hands
 * out again would collide with tokens already issued.
 */
export function stateBehind(state: TrackingState, scan: LogScan, cache: StatCache): boolean {
  if (cache.savedGeneration > state.generation) return true;
  for (const generation of scan.index.recentEntries.values()) if (generation > state.generation) return true;
  return false;
}

/** Why a log that lost records made durable is not answered from. */
export const LOG_BEHIND_MARK = 'change log is shorter than, or differs from, what sbm had made durable (records lost)';

/** Stats every band file: the reference later audits compare against. O(bands), once per epoch. */
async function writeBaseline(host: TrackerHost, tag: number, generation: number): Promise<void> {
  const entries = new Map<number, FileStamp | undefined>();
  const bands = (await listBandFolder(host.paths.bands, host.bandCount, STRAYS_REPORTED_ELSEWHERE).catch(() => undefined)) ?? [];
  await inSyncRuns(bands, (bandIndex) => {
    entries.set(bandIndex, stampPathSync(host.bandPath(bandIndex)));
  });
  const staged = join(host.paths.tmp, `stat-cache.${randomTag()}`);
  const cache = await StatCache.create(staged, tag);
  try {
    await cache.save(entries, await stampPath(host.paths.bands), generation, { logTrusted: undefined, logBandsAtLeast: 0 });
  } finally {
    await cache.close();
  }
  await removeIfNotFile(join(host.paths.sbm, STAT_CACHE_FILE)); // a folder there would make the rename fail
  await rename(staged, join(host.paths.sbm, STAT_CACHE_FILE));
  await fsyncDirectory(host.paths.sbm);
}

/**
 * Keeps the log proportional to the bands ever changed: one record per band, its latest generation.
 * `bandsAtLeast` (from the stat cache) bounds the distinct bands from below, so a log that cannot
 * need compacting is not indexed to find out.
 */
async function compactIfLarge(host: TrackerHost, logPath: string, scan: LogScan, tag: number, bandsAtLeast: number): Promise<LogScan> {
  if (scan.recordCount < COMPACT_MIN_RECORDS) return scan;
  const distinctAtLeast = scan.index.distinctBandsIfKnown() ?? Math.max(bandsAtLeast, scan.index.recentEntries.size);
  if (scan.recordCount < 4 * distinctAtLeast) return scan;
  const latest = scan.index.all();
  if (scan.recordCount < 4 * latest.size) return scan;
  const records = [...latest].sort((a, b) => a[0] - b[0]).map(([bandIndex, generation]) => encodeChangeRecord(tag, generation, bandIndex));
  const bytes = Buffer.concat(records);
  try {
    await ChangeLog.rewrite(logPath, host.paths.tmp, bytes);
  } catch (error) {
    if (isNoSpace(error)) return scan; // compaction only saves space later; without room, skip it
    throw error;
  }
  // The rewritten log no longer starts with the stat cache's trusted bytes: nothing is trusted.
  return { ...emptyScan(latest), recordCount: records.length, validBytes: bytes.length, validCrc: logCrc(bytes) };
}

function emptyScan(latest: Map<number, number>): LogScan {
  return {
    index: new LogIndex(Buffer.alloc(0), latest),
    recordCount: 0,
    validBytes: 0,
    validCrc: 0,
    trustedPoint: undefined,
    damaged: false,
    markHeld: true,
  };
}
