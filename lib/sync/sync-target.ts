// The bundle side of `sbm sync`: what the sync needs of the bundle it keeps in step. A bundle
// this process holds answers through its engine and session (localSyncTarget); one a running
// `sbm mount` holds answers through the mount's control channel (lib/control/). Either way every
// write goes through the engine that owns the bundle, so the tracker records it and
// copy-on-write keeps snapshots and backups intact.

import type { SparseBundle } from '../engine/sparse-bundle.js';
import { isSbmError } from '../errors.js';
import { BundleSession } from '../session/bundle-session.js';

export interface ChangesSince {
  /** Bands the tracker reports changed since the token (by sbm, or found behind its back). */
  readonly bands: ReadonlySet<number>;
  /** Token of now, taken at the same quiet point. */
  readonly token: string;
}

export interface SyncTarget {
  readonly path: string;
  readonly sizeBytes: number;
  readonly bandSizeBytes: number;
  /**
   * True when others may write the bundle while the sync runs (a mount's clients): the record is
   * then tied to the token taken before the sync wrote anything.
   */
  readonly sharedWriters: boolean;
  readInto(offset: number, target: Uint8Array): Promise<void>;
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Makes the range read as zeros (a whole band's file is deleted). */
  zero(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  token(): Promise<string>;
  /** Changes since `token`, or undefined when the tracker refuses it (foreign, stale, future). */
  changesSince(token: string): Promise<ChangesSince | undefined>;
  /** Grows the disk to `sizeBytes`. */
  grow(sizeBytes: number): Promise<void>;
}

const REFUSED_TOKEN_CODES = ['SBM_BAD_TOKEN', 'SBM_TOKEN_FOREIGN', 'SBM_TOKEN_STALE', 'SBM_TOKEN_FUTURE'] as const;

/** True for the errors a tracker gives a token it cannot answer for. */
export function isRefusedToken(error: unknown): boolean {
  return REFUSED_TOKEN_CODES.some((code) => isSbmError(error, code));
}

/** A bundle this process opened read-write (its lock keeps every other writer out). */
export function localSyncTarget(bundle: SparseBundle): SyncTarget {
  const session = new BundleSession(bundle);
  return {
    path: bundle.path,
    get sizeBytes() {
      return bundle.sizeBytes;
    },
    bandSizeBytes: bundle.bandSizeBytes,
    sharedWriters: false,
    readInto: (offset, target) => bundle.readInto(offset, target),
    write: (offset, data) => bundle.write(offset, data),
    zero: (offset, length) => bundle.trim(offset, length),
    flush: () => bundle.flush(),
    token: () => session.token(),
    changesSince: async (token) => {
      try {
        const report = await session.changedBands(token);
        return { bands: new Set(report.bands.map((band) => band.bandIndex)), token: report.token ?? (await session.token()) };
      } catch (error) {
        if (isRefusedToken(error)) return undefined;
        throw error;
      }
    },
    grow: (sizeBytes) => session.resize(sizeBytes),
  };
}
