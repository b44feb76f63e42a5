// `sbm sync`: makes a bundle's disk equal to a source disk (any format reader) by writing only
// the bands whose content differs, and remembers what it synced so the next run reads less.
//
//   1. sizes: the bundle must have the source's size (grown first with `resize`)
//   2. record: the last run's .sbm/sync.json, checked against the tracker (bands changed since
//      its token lose their hashes; a refused token discards it)
//   3. plan: delta (only the runs newer source layers allocate, plus bands changed in the bundle)
//      or full (every band, hash first)
//   4. band pass: compare, write differences through the engine, flush
//   5. record: the token, hashes and the source chain (only when the source did not move while
//      it was read), replaced atomically. An interrupted run keeps the old record, whose token
//      still makes the tracker name every band the run wrote.

import { isEncryptedBundle } from '../bundle/bundle-encryption.js';
import type { BlockDevice } from '../block-device.js';
import type { CopyProgress } from '../copy-device.js';
import { SbmError } from '../errors.js';
import { type ImageLayer, isLayered, wholeLayer } from '../image-layers.js';
import type { WarningSink } from '../warnings.js';
import { type BandWork, runBandPass } from './band-pass.js';
import { type CurrentLayer, alignRuns, planDelta } from './delta-plan.js';
import { layerIdentity, mayHideWrites, sameLayer } from './layer-identity.js';
import { type RecordedLayer, SYNC_RECORD_VERSION, type SyncRecord, readSyncRecord, writeSyncRecord } from './sync-record.js';
import { findWriteLock } from './source-locks.js';
import type { SyncTarget } from './sync-target.js';

export interface SyncOptions {
  /** The path the source was opened from. */
  readonly sourcePath: string;
  /**
   * For a source without layer information: every file it reads (a raw disk: its one file).
   * Without it such a source may have parents sync cannot watch, so each run is a full compare.
   */
  readonly sourceFiles?: readonly string[];
  /** Grow the bundle when the source is larger. */
  readonly resize?: boolean;
  /** Compare every band even when a delta is possible. */
  readonly full?: boolean;
  /** Read a source its hypervisor holds open for writing (else SBM_LOCKED). */
  readonly forceShare?: boolean;
  readonly onProgress?: (progress: CopyProgress) => void;
  readonly onWarning?: WarningSink;
  readonly checkAborted?: () => void;
}

export interface SyncResult {
  readonly mode: 'delta' | 'full';
  /** Why a full compare was done, when it was. */
  readonly fullReason?: string;
  readonly sizeBytes: number;
  readonly bytesRead: number;
  readonly bytesCompared: number;
  readonly bandsCompared: number;
  readonly bandsWritten: number;
  readonly grewFromBytes?: number;
  readonly seconds: number;
}

const SECTOR_BYTES = 512;

export async function syncDisk(source: BlockDevice, target: SyncTarget, options: SyncOptions): Promise<SyncResult> {
  const started = performance.now();
  const onWarning = options.onWarning ?? (() => undefined);
  const sizeBytes = Math.ceil(source.sizeBytes / SECTOR_BYTES) * SECTOR_BYTES;
  const layers = chainOf(source, options).reverse();
  const watchable = isLayered(source) || options.sourceFiles !== undefined;
  if (options.forceShare !== true) await refuseLocked(layers);
  const grewFromBytes = await matchSize(target, sizeBytes, options.resize === true);
  const before = await identities(layers);

  const record = await usableRecord(target, onWarning);
  const changes = record === undefined ? undefined : await target.changesSince(record.token);
  const startToken = target.sharedWriters ? (changes?.token ?? (await target.token())) : undefined;
  const trustedHash = (bandIndex: number): string | undefined =>
    record !== undefined && changes !== undefined && !changes.bands.has(bandIndex) ? (record.hashes[bandIndex] ?? undefined) : undefined;

  const plan =
    options.full === true
      ? { kind: 'full' as const, reason: '--full' }
      : await planDelta(record, before, sizeBytes, target.bandSizeBytes, changes?.bands);
  const bandCount = Math.ceil(sizeBytes / target.bandSizeBytes);
  const work: BandWork[] = plan.kind === 'delta' ? plan.work : allBands(bandCount);
  const bytesTotal = work.reduce((sum, item) => sum + workBytes(item, target, sizeBytes), 0);
  let bytesDone = 0;
  options.onProgress?.({ bytesDone, bytesTotal });
  const pass = await runBandPass(source, target, work, {
    trustedHash,
    onBytes: (bytes) => {
      bytesDone += bytes;
      options.onProgress?.({ bytesDone, bytesTotal });
    },
    ...(options.checkAborted === undefined ? {} : { checkAborted: options.checkAborted }),
  });
  await target.flush();

  const after = await identities(layers);
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  const stable =
    watchable &&
    after.every((now, index) => {
      const then = before[index];
      return then !== undefined && sameLayer(then.identity, now.identity) && !mayHideWrites(now.identity, nowNs);
    });
  // An encrypted bundle keeps no band hashes: a hash of plaintext in .sbm/sync.json would let anyone
  // with the folder confirm a guess of a band's content. Every run then compares every band.
  const encrypted = await isEncryptedBundle(target.path);
  const hashes: Array<string | null> = [];
  for (let bandIndex = 0; bandIndex < bandCount; bandIndex++) {
    const hash = pass.hashes.has(bandIndex) ? pass.hashes.get(bandIndex) : trustedHash(bandIndex);
    hashes.push(encrypted ? null : (hash ?? null));
  }
  const next: SyncRecord = {
    version: SYNC_RECORD_VERSION,
    token: startToken ?? (await target.token()),
    sizeBytes,
    bandSizeBytes: target.bandSizeBytes,
    syncedAt: new Date().toISOString(),
    hashes,
    ...(stable ? { source: { sizeBytes, layers: await recordedLayers(after, sizeBytes) } } : {}),
  };
  await writeSyncRecord(target.path, next);
  return {
    mode: plan.kind,
    ...(plan.kind === 'full' ? { fullReason: plan.reason } : {}),
    sizeBytes,
    bytesRead: pass.bytesRead,
    bytesCompared: bytesTotal,
    bandsCompared: pass.bandsCompared,
    bandsWritten: pass.bandsWritten,
    ...(grewFromBytes === undefined ? {} : { grewFromBytes }),
    seconds: (performance.now() - started) / 1000,
  };
}

/** Grows the bundle when allowed; refuses any other size difference. Returns the old size when grown. */
async function matchSize(target: SyncTarget, sizeBytes: number, resize: boolean): Promise<number | undefined> {
  const bundleBytes = target.sizeBytes;
  if (sizeBytes === bundleBytes) return undefined;
  if (sizeBytes > bundleBytes && resize) {
    await target.grow(sizeBytes);
    return bundleBytes;
  }
  const advice =
    sizeBytes > bundleBytes
      ? 'the disk grew: run again with --resize to grow the bundle'
      : 'the bundle is larger than the disk: sync does not shrink a bundle (sbm resize does, deleting the bands past the end)';
  throw new SbmError('SBM_SIZE_MISMATCH', `${target.path} holds ${bundleBytes} bytes but the source disk has ${sizeBytes}: ${advice}`, {
    bundleBytes,
    sourceBytes: sizeBytes,
  });
}

async function refuseLocked(layers: readonly ImageLayer[]): Promise<void> {
  const marked = layers.find((layer) => layer.openForWriting !== undefined)?.openForWriting;
  const lock =
    marked !== undefined
      ? { ...marked, detail: 'its header marks it in use' }
      : await findWriteLock(layers.flatMap((layer) => layer.files));
  if (lock === undefined) return;
  throw new SbmError(
    'SBM_LOCKED',
    `${lock.path} is open for writing by ${lock.hypervisor} (${lock.detail}): take a VM snapshot and sync the frozen chain ` +
      '(--at-snapshot NAME), or shut the VM down; --force-share reads it anyway',
    { path: lock.path, hypervisor: lock.hypervisor },
  );
}

/** The source's layers, top first; a format without layer information is one layer of its files. */
function chainOf(source: BlockDevice, options: SyncOptions): ImageLayer[] {
  return isLayered(source) ? [...source.layers()] : [wholeLayer(options.sourceFiles ?? [options.sourcePath], source.sizeBytes)];
}

async function identities(layers: readonly ImageLayer[]): Promise<CurrentLayer[]> {
  const list: CurrentLayer[] = [];
  for (const layer of layers) list.push({ layer, identity: await layerIdentity(layer) });
  return list;
}

async function usableRecord(target: SyncTarget, onWarning: WarningSink): Promise<SyncRecord | undefined> {
  const record = await readSyncRecord(target.path, onWarning);
  return record !== undefined && record.bandSizeBytes === target.bandSizeBytes ? record : undefined;
}

/** Base first; the base's runs are never needed (a changed base means a full compare). */
async function recordedLayers(layers: readonly CurrentLayer[], sizeBytes: number): Promise<RecordedLayer[]> {
  const list: RecordedLayer[] = [];
  for (const [level, { layer, identity }] of layers.entries()) {
    const runs = level === 0 ? [] : alignRuns(await layer.allocated(0, sizeBytes), sizeBytes);
    list.push({ ...identity, allocated: runs.map((run) => [run.offset, run.length] as const) });
  }
  return list;
}

function allBands(bandCount: number): BandWork[] {
  return Array.from({ length: bandCount }, (_, bandIndex) => ({ bandIndex, runs: 'whole' as const }));
}

function workBytes(item: BandWork, target: SyncTarget, sizeBytes: number): number {
  if (item.runs !== 'whole') return item.runs.reduce((sum, run) => sum + run.length, 0);
  return Math.min(target.bandSizeBytes, sizeBytes - item.bandIndex * target.bandSizeBytes);
}
