// Binds a live disk to the backup engine. Two ways to freeze it:
//
//   held      (bundleBackupSource, the default) this process opened the bundle read-write, so the
//             exclusive flock keeps every other process out; holding the bundle's I/O gate for the
//             whole backup keeps this process's own writers out too. The backup reads bands/
//             directly: no snapshot, no hard links into the live bundle, no restamping.
//             gate: drain + flush -> tracker answer for the previous token + checkpoint (one
//             quiet point, one token) -> backup reads -> release (held-back I/O resumes)
//   snapshot  (snapshotBackupSource, and bundleBackupSource with freeze: 'snapshot') a temporary
//             snapshot taken with I/O drained; writers keep going while the backup copies. Used for
//             a bundle a running `sbm mount` holds (lib/control/remote-backup-source.ts) and for a
//             library caller whose own writers must not wait. Asking the tracker after the snapshot
//             can only over-report (writes after the point), never under-report.
//
// Both clean up backup snapshots of killed runs and report token refusals the same way. Only a
// snapshot whose name carries a backup run's check digits is removed: a user may name snapshots
// freely (even "sbm-backup-..."), and those stay, with a warning naming them.

import { randomTag } from '../fs/temp-name.js';
import { readdir } from 'node:fs/promises';
import { basename } from 'node:path';
import { SbmError, isSbmError } from '../errors.js';
import type { WarningSink } from '../warnings.js';
import type { SparseBundle } from '../engine/sparse-bundle.js';
import { BundleSession } from '../session/bundle-session.js';
import { SNAPSHOT_SUFFIX } from '../snapshots/snapshot-manager.js';
import type { BackupSource, ChangedAnswer, FrozenPoint } from './create-backup.js';

/** Temporary snapshots a backup freezes the disk with are named `sbm-backup-<ms>-<tag>-<check>`. */
export const BACKUP_SNAPSHOT_PREFIX = 'sbm-backup-';
const BACKUP_SNAPSHOT_PATTERN = /^sbm-backup-(\d{13})-([0-9a-f]{12})-([0-9a-f]{8})$/;

/** A fresh backup snapshot name; its last part is a check over the rest (see isBackupSnapshotName). */
export function backupSnapshotName(nowMs = Date.now(), tag = randomTag(12)): string {
  return `${BACKUP_SNAPSHOT_PREFIX}${nowMs}-${tag}-${nameCheck(`${nowMs}-${tag}`)}`;
}

/**
 * True for names backupSnapshotName makes. The check digits are sbm's marker: a name a person
 * picks, even one shaped like a backup snapshot's, does not carry them, so it is never removed.
 */
export function isBackupSnapshotName(name: string): boolean {
  const match = BACKUP_SNAPSHOT_PATTERN.exec(name);
  return match !== null && match[3] === nameCheck(`${match[1]}-${match[2]}`);
}

/** FNV-1a (32 bits) of a salted string: enough to tell sbm's names from chosen ones, no crypto load. */
function nameCheck(text: string): string {
  let hash = 0x811c9dc5;
  for (const char of `sbm backup snapshot ${text}`) {
    hash ^= char.charCodeAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}
/** Exit status 10 marks the tracker's "full backup required" refusals. */
const TOKEN_REFUSALS = new Set(['SBM_TOKEN_FOREIGN', 'SBM_TOKEN_STALE', 'SBM_TOKEN_FUTURE', 'SBM_BAD_TOKEN']);

/** What a backup needs of the disk's snapshots and tracker, wherever the disk is held. */
export interface SnapshotHost {
  readonly path: string;
  listSnapshots(): Promise<ReadonlyArray<{ readonly name: string }>>;
  createSnapshot(name: string): Promise<{ readonly path: string; readonly createdAt: string; readonly token: string }>;
  deleteSnapshot(name: string): Promise<void>;
  changedBands(token: string): Promise<{ readonly bands: ReadonlyArray<{ readonly bandIndex: number }> }>;
}

export interface BundleBackupSourceOptions {
  /**
   * 'held' (default): the bundle's I/O waits while the backup reads the live bands (no snapshot).
   * 'snapshot': a temporary snapshot, so the caller's writes keep flowing during the backup.
   */
  readonly freeze?: 'held' | 'snapshot';
}

export function bundleBackupSource(bundle: SparseBundle, options: BundleBackupSourceOptions = {}): BackupSource {
  const session = new BundleSession(bundle);
  if (options.freeze === 'snapshot') {
    return snapshotBackupSource({
      path: bundle.path,
      listSnapshots: () => session.snapshots.list(),
      createSnapshot: (name) => session.snapshots.create(name),
      deleteSnapshot: (name) => session.snapshots.delete(name),
      changedBands: (token) => session.changedBands(token),
    });
  }
  return {
    path: bundle.path,
    name: backupSetName(bundle.path),
    async freeze(previousToken?: string, options: { readonly onWarning?: WarningSink } = {}): Promise<FrozenPoint> {
      if (bundle.readOnly) throw new SbmError('SBM_READ_ONLY', `bundle ${bundle.path} is open read-only`);
      const entries = await readdir(session.snapshots.directory).catch(() => [] as string[]);
      const names = entries.filter((entry) => entry.endsWith(SNAPSHOT_SUFFIX)).map((entry) => entry.slice(0, -SNAPSHOT_SUFFIX.length));
      await removeStaleBackupSnapshots(bundle.path, names, (name) => session.snapshots.delete(name), options.onWarning);
      return holdBundle(bundle, previousToken);
    },
    answerChangedBands: (token) => refusalAsAnswer(() => session.changedBands(token)),
  };
}

/** Holds the bundle's I/O gate from the quiet point until release(). */
async function holdBundle(bundle: SparseBundle, previousToken: string | undefined): Promise<FrozenPoint> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let frozen!: (point: Omit<FrozenPoint, 'release'>) => void;
  const point = new Promise<Omit<FrozenPoint, 'release'>>((resolve) => (frozen = resolve));
  const holding = bundle.withQuiescedIo(async () => {
    const tracker = bundle.changeTracker;
    const takenAt = new Date();
    let changed: ChangedAnswer | undefined;
    let token: string | undefined;
    if (previousToken !== undefined) {
      // One quiet point: the answer and the new token (the report's checkpoint) name the same state.
      changed = await refusalAsAnswer(async () => {
        const report = await tracker.reportSince(previousToken);
        token = report.token;
        return report;
      });
    }
    token ??= await tracker.checkpoint();
    frozen({ bundlePath: bundle.path, takenAt, token, ...(changed === undefined ? {} : { changed }) });
    await released;
  });
  // Fails before the point is frozen: reject the freeze. After it, the gate only waits for release.
  const ready = await Promise.race([point, holding.then(() => undefined)]);
  if (ready === undefined) throw new SbmError('SBM_CLOSED', `bundle ${bundle.path} was released before its backup point was taken`);
  return {
    ...ready,
    release: async () => {
      release();
      await holding;
    },
  };
}

/**
 * A killed backup leaves its snapshot behind; it would pin old bands forever. One still in use
 * (SBM_LOCKED: a live client's backup on a mount serving several, or a reader) is left alone, as
 * is any snapshot whose name only looks like a backup's (no check digits: not provably ours).
 */
async function removeStaleBackupSnapshots(
  bundlePath: string,
  names: Iterable<string>,
  deleteSnapshot: (name: string) => Promise<void>,
  onWarning: WarningSink | undefined,
): Promise<void> {
  for (const name of names) {
    if (!name.startsWith(BACKUP_SNAPSHOT_PREFIX)) continue;
    if (!isBackupSnapshotName(name)) {
      onWarning?.({
        code: 'SBM_BACKUP_LEFT_ALONE',
        message:
          `left snapshot "${name}" of ${bundlePath} alone: its name lacks a backup run's check digits, ` +
          'so sbm did not make it for a backup (sbm snapshot delete removes it)',
        data: { path: bundlePath, snapshot: name },
      });
      continue;
    }
    await deleteSnapshot(name).catch((error: unknown) => {
      if (!isSbmError(error, 'SBM_LOCKED')) throw error;
    });
  }
}

export function snapshotBackupSource(host: SnapshotHost): BackupSource {
  return {
    path: host.path,
    name: backupSetName(host.path),
    async freeze(previousToken?: string, options: { readonly onWarning?: WarningSink } = {}): Promise<FrozenPoint> {
      const stale = (await host.listSnapshots()).map((snapshot) => snapshot.name);
      await removeStaleBackupSnapshots(host.path, stale, (name) => host.deleteSnapshot(name), options.onWarning);
      const name = backupSnapshotName();
      const snapshot = await host.createSnapshot(name);
      const release = () => host.deleteSnapshot(name);
      try {
        const changed = previousToken === undefined ? undefined : await refusalAsAnswer(() => host.changedBands(previousToken));
        return {
          bundlePath: snapshot.path,
          takenAt: new Date(snapshot.createdAt),
          token: snapshot.token,
          ...(changed === undefined ? {} : { changed }),
          release,
        };
      } catch (error) {
        await release();
        throw error;
      }
    },
    answerChangedBands: (token) => refusalAsAnswer(() => host.changedBands(token)),
  };
}

function backupSetName(path: string): string {
  return basename(path.replace(/\/+$/, '')).replace(/\.(sparsebundle|backupbundle)$/, '');
}

async function refusalAsAnswer(
  ask: () => Promise<{ readonly bands: ReadonlyArray<{ readonly bandIndex: number }> }>,
): Promise<ChangedAnswer> {
  try {
    const report = await ask();
    return { kind: 'changed', bands: new Set(report.bands.map((band) => band.bandIndex)) };
  } catch (error) {
    if (isSbmError(error) && TOKEN_REFUSALS.has(error.code)) return { kind: 'refused', reason: error.message };
    throw error;
  }
}
