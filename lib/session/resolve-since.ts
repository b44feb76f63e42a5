// `--since` accepts a token, a snapshot name or an ISO-8601 time. A snapshot name wins over a
// time when both could match (a snapshot may well be named 2026-01-31); a token always starts
// with "sbm1:".

import type { SparseBundle } from '../engine/sparse-bundle.js';
import type { SnapshotManager } from '../snapshots/snapshot-manager.js';
import { SbmError, isSbmError } from '../errors.js';
import { looksLikeToken } from '../tracking/tracking-token.js';

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

export interface ResolvedSince {
  readonly kind: 'token' | 'snapshot' | 'time';
  readonly token: string;
}

export async function resolveSince(bundle: SparseBundle, snapshots: SnapshotManager, since: string): Promise<ResolvedSince> {
  if (looksLikeToken(since)) return { kind: 'token', token: since };
  try {
    return { kind: 'snapshot', token: (await snapshots.meta(since)).token };
  } catch (error) {
    if (!isSbmError(error, 'SBM_NOT_FOUND') && !isSbmError(error, 'SBM_INVALID_ARGUMENT')) throw error;
  }
  if (ISO_TIME.test(since)) {
    const timeMs = Date.parse(since.replace(' ', 'T'));
    if (!Number.isNaN(timeMs)) return { kind: 'time', token: bundle.changeTracker.tokenForTime(timeMs) };
  }
  throw new SbmError('SBM_BAD_TOKEN', `--since "${since}" is not a token, a snapshot of ${bundle.path} or an ISO-8601 time`, { since });
}
