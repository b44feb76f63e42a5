// Opening a bundle's change tracker. Read-write opens go through startEpoch (reuse the epoch or
// start a new one), recover from a crash, and keep the full-filesystem reserve in place.
// Read-only opens never write: a history that cannot be trusted (lost log records, a copied
// folder, damaged files) is kept as the reason every token is refused.

import { join } from 'node:path';
import { ChangeLog, scanChangeLog } from './change-log.js';
import { ChangeTracker } from './change-tracker.js';
import { CHANGE_LOG_FILE, STAT_CACHE_FILE } from './constants.js';
import { LogIndex } from './log-index.js';
import { LOG_BEHIND_MARK, STATE_BEHIND, startEpoch, stateBehind } from './start-epoch.js';
import { StatCache, statCacheMaxBytes } from './stat-cache.js';
import { ensureReserve } from './tracking-file.js';
import { type TrackingState, epochTagOf, folderIdentity, readTrackingState } from './tracking-state.js';
import type { OpenOptions, TrackerHost } from './tracker-types.js';

/** Opens the change tracker of the bundle `options.host` describes. */
export function openChangeTracker(options: OpenOptions): Promise<ChangeTracker> {
  return options.readOnly ? openReadOnly(options) : openReadWrite(options);
}

async function openReadOnly({ host, onWarning }: OpenOptions): Promise<ChangeTracker> {
  const read = await readTrackingState(host.paths.sbm);
  if (read.kind !== 'ok') {
    const reason = read.kind === 'missing' ? undefined : `tracking state damaged: ${read.reason}`;
    return ChangeTracker.build(host, undefined, reason, new LogIndex(Buffer.alloc(0), new Map()), undefined, undefined, onWarning);
  }
  const state = read.state;
  const problem = await readOnlyProblem(host, state);
  const tag = epochTagOf(state.epochId);
  const cache = await StatCache.load(join(host.paths.sbm, STAT_CACHE_FILE), tag, false, statCacheMaxBytes(host.bandCount));
  const log = await ChangeLog.read(join(host.paths.sbm, CHANGE_LOG_FILE));
  const scan = scanChangeLog(log.bytes, tag, cache?.logTrusted, state.logMark);
  const reason =
    problem ??
    log.problem ??
    (scan.damaged
      ? 'change log damaged'
      : !scan.markHeld
        ? LOG_BEHIND_MARK
        : cache === undefined
          ? 'stat cache missing or damaged'
          : stateBehind(state, scan, cache)
            ? STATE_BEHIND
            : undefined);
  return ChangeTracker.build(host, state, reason, scan.index, cache, undefined, onWarning);
}

async function readOnlyProblem(host: TrackerHost, state: TrackingState): Promise<string | undefined> {
  const folder = await folderIdentity(host.paths.root);
  return folder.dev === state.folder.dev && folder.ino === state.folder.ino ? undefined : 'the bundle folder was copied, moved or restored';
}

async function openReadWrite({ host, onWarning }: OpenOptions): Promise<ChangeTracker> {
  const opened = await startEpoch(host, onWarning);
  const { state, scan, cache } = opened;
  // Bands with a record newer than their cached stat were changed by a session that ended
  // without saving stats (a crash): restat them at the next checkpoint. Records in the trusted
  // part of the log are covered by completed saves, so only the records after it are looked at.
  const touched: number[] = [];
  for (const [bandIndex, generation] of scan.index.recentEntries)
    if (generation > cache.statGenerationOf(bandIndex)) touched.push(bandIndex);
  const log = await ChangeLog.openForAppend(join(host.paths.sbm, CHANGE_LOG_FILE), scan.validBytes, scan.validCrc, host.paths.sbm);
  await ensureReserve(host.paths.sbm);
  // The generation moves on before this session's first change record (startGeneration), not here.
  return ChangeTracker.build(host, state, undefined, scan.index, cache, log, onWarning, touched, scan.trustedPoint);
}
