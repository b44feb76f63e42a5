// sbm backup: one complete, openable bundle per run, copying only the bands that changed since the
// previous backup and hard-linking every other band to it.
//
//   0. refuse a destination inside the source bundle (it would back itself up, or be thinned away)
//   1. lock the set; discard *.inProgress left by interrupted runs (only folders carrying the
//      marker step 3 writes first; any other folder is left alone with a warning)
//   2. freeze the source at one point and, at that same point, ask the tracker which bands changed
//      since the previous backup's token (bundle-backup-source.ts: the held live bundle, or a
//      temporary snapshot while writers keep going); refused (foreign / reset / stale token) ->
//      hash every band, compare with the manifest
//   3. build <stem>.inProgress/: created exclusively with .sbm/in-progress.json (durable) before
//      anything else; copy changed bands (hashed during the copy, one read; each copy's fsync
//      runs while the next bands are copied), link the rest, write the plists, token and lock
//      (each new file fsynced once, concurrently); once every fsync has returned,
//      .sbm/manifest.json; fsync it and every folder of the build together (hard links add no
//      data to fsync)
//   4. rename <stem>.inProgress -> <stem>.sparsebundle, fsync the set folder
//   5. release the frozen point (as soon as the bands are read); on any failure remove
//      <stem>.inProgress (no other backup is touched)

import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { STRAYS_REPORTED_ELSEWHERE, bandCountOf, listBandFolder } from '../bundle/band-listing.js';
import { bandFileName, bundlePaths } from '../bundle/bundle-paths.js';
import { SbmError, fromSystemError, isSbmError } from '../errors.js';
import { readBundleInfo, readPlistBytes } from '../bundle/bundle-files.js';
import { readTokenBytes } from '../bundle/bundle-encryption.js';
import { fsyncDirectory, writeNewFileDurably } from '../fs/atomic-write.js';
import { assertOutputOutsideInputs } from '../fs/output-inside-input.js';
import { writeFully } from '../fs/read-fully.js';
import { mapLimit } from '../map-limit.js';
import { PendingSyncs } from '../fs/pending-syncs.js';
import { prewarmHasher } from './band-hasher.js';
import type { WarningSink } from '../warnings.js';
import {
  COPY_CONCURRENCY,
  type CopiedBand,
  copyBandHashing,
  hashFile,
  linkBands,
  readBandHashing,
  releaseBandBuffer,
  writeNewBand,
} from './band-files.js';
import {
  type BackupManifest,
  type BackupMode,
  type BandRecord,
  MANIFEST_RELATIVE_PATH,
  MANIFEST_VERSION,
  readManifest,
} from './backup-manifest.js';
import { BACKUP_SUFFIX, claimBuildFolder, discardInterrupted, freeBackupStem, listBackups, lockBackupSet } from './backup-set.js';
import { debugLog } from '../debug-log.js';

const debug = debugLog('sbm:backup');

/** A complete bundle folder that does not change until release(): a snapshot, or the held live bundle. */
export interface FrozenPoint {
  readonly bundlePath: string;
  readonly takenAt: Date;
  /** Tracker token of the point; the next backup asks for changes since it. */
  readonly token?: string;
  /** The tracker's answer for the token freeze() was given (absent when it was given none). */
  readonly changed?: ChangedAnswer;
  release(): Promise<void>;
}

export type ChangedAnswer =
  | { readonly kind: 'changed'; readonly bands: ReadonlySet<number> }
  | { readonly kind: 'refused'; readonly reason: string };

/** What a backup needs of the disk it protects. */
export interface BackupSource {
  readonly path: string;
  /** Name of the backup set folder under the destination. */
  readonly name: string;
  /**
   * Freezes the disk. Given the previous backup's token, the point also carries the bands changed
   * since it (a superset is fine), or why the tracker cannot say.
   */
  freeze(previousToken?: string, options?: { readonly onWarning?: WarningSink }): Promise<FrozenPoint>;
  /** Bands changed since `token` (a superset is fine), or why the tracker cannot say; not while frozen. */
  answerChangedBands(token: string): Promise<ChangedAnswer>;
}

export interface BackupOptions {
  /** Copy unchanged bands instead of linking them (destinations without hard links). */
  readonly copyMode?: boolean;
  readonly onWarning?: WarningSink;
  /** After each band: bands done of the total, and the bytes copied so far (linked bands cost none). */
  readonly onProgress?: (progress: { bandsDone: number; bandsTotal: number; bytesWritten: number }) => void;
}

export interface BackupResult {
  readonly path: string;
  readonly name: string;
  readonly mode: BackupMode;
  readonly fallbackReason?: string;
  readonly bandsCopied: number;
  readonly bandsLinked: number;
  readonly bytesWritten: number;
  readonly seconds: number;
}

export async function createBackup(source: BackupSource, destination: string, options: BackupOptions = {}): Promise<BackupResult> {
  const started = process.hrtime.bigint();
  const setDir = join(destination, source.name);
  await assertOutputOutsideInputs(setDir, [source.path], {
    outputLabel: 'backup destination',
    inputLabel: 'source bundle',
    refuseInputInsideOutput: false,
  });
  debug('backup of %s into %s: locking the set', source.path, setDir);
  const setLock = await lockBackupSet(setDir);
  try {
    const discarded = await discardInterrupted(setDir);
    if (discarded.removed.length > 0) {
      options.onWarning?.({
        code: 'SBM_BACKUP_DISCARDED',
        message: `removed ${discarded.removed.length} interrupted backup(s): ${discarded.removed.join(', ')}`,
      });
    }
    for (const name of discarded.leftAlone) {
      options.onWarning?.({
        code: 'SBM_BACKUP_LEFT_ALONE',
        message: `left ${join(setDir, name)} alone: it carries no sbm marker, so sbm did not make it`,
        data: { path: join(setDir, name) },
      });
    }
    const previous = (await listBackups(setDir)).at(-1);
    const previousManifest = previous === undefined ? undefined : await readManifest(previous.path);
    debug('previous backup: %s; freezing the source', previous?.name ?? 'none');
    const frozen = await source.freeze(previousManifest?.token, options);
    debug('frozen at %s (token %s)', frozen.takenAt.toISOString(), frozen.token ?? 'none');
    let releasing: Promise<void> | undefined;
    // Once the bands are read the source is free again (writers it holds back resume).
    const release = () => (releasing ??= frozen.release());
    try {
      const plan = await planBackup(source, frozen, previousManifest);
      if (plan.fallbackReason !== undefined) {
        options.onWarning?.({
          code: 'SBM_BACKUP_FULL_COMPARE',
          message: `${plan.fallbackReason}; comparing every band's hash with the previous backup`,
        });
      }
      debug('plan: %s mode%s', plan.mode, plan.fallbackReason === undefined ? '' : ` (${plan.fallbackReason})`);
      const stem = await freeBackupStem(setDir, frozen.takenAt);
      const building = await claimBuildFolder(setDir, stem, { source: source.path, startedAt: new Date() });
      try {
        const built = await buildBackup(building, frozen, plan, previous?.path, previousManifest, options);
        await release();
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const manifest: BackupManifest = {
          version: MANIFEST_VERSION,
          source: { path: source.path, name: source.name },
          takenAt: frozen.takenAt.toISOString(),
          sizeBytes: plan.sizeBytes,
          bandSizeBytes: plan.bandSizeBytes,
          ...(frozen.token === undefined ? {} : { token: frozen.token }),
          mode: plan.mode,
          ...(plan.fallbackReason === undefined ? {} : { fallbackReason: plan.fallbackReason }),
          bands: built.bands,
          stats: { bandsCopied: built.bandsCopied, bandsLinked: built.bandsLinked, bytesWritten: built.bytesWritten, seconds },
        };
        debug('bands done: %d copied, %d linked; writing the manifest', built.bandsCopied, built.bandsLinked);
        await writeManifestAndSync(building, manifest);
        const finalPath = join(setDir, stem + BACKUP_SUFFIX);
        await rename(building, finalPath);
        await fsyncDirectory(setDir);
        debug('published %s in %s s', finalPath, seconds.toFixed(2));
        return {
          path: finalPath,
          name: stem + BACKUP_SUFFIX,
          mode: plan.mode,
          ...(plan.fallbackReason ? { fallbackReason: plan.fallbackReason } : {}),
          ...manifest.stats,
        };
      } catch (error) {
        await rm(building, { recursive: true, force: true }); // claimed by this run: its marker is ours
        throw error;
      }
    } finally {
      await release();
    }
  } catch (error) {
    throw translateWriteError(error, destination);
  } finally {
    await setLock.release();
  }
}

export interface BackupPlan {
  readonly mode: BackupMode;
  readonly fallbackReason?: string;
  readonly sizeBytes: number;
  readonly bandSizeBytes: number;
  /** Bands present at the frozen point. */
  readonly present: readonly number[];
  /** Bands the tracker names as changed (mode 'tracked' only). */
  readonly changed?: ReadonlySet<number>;
}

/** What a run must do: which bands are present, and which changed (or why every band is compared). */
export async function planBackup(
  source: BackupSource,
  frozen: FrozenPoint,
  previous: { readonly token?: string; readonly bandSizeBytes: number } | undefined,
): Promise<BackupPlan> {
  const info = await readBundleInfo(bundlePaths(frozen.bundlePath), () => undefined);
  // Strays were reported when the bundle was opened; a snapshot holds none (only listed bands are linked).
  const listed = await listBandFolder(
    join(frozen.bundlePath, 'bands'),
    bandCountOf(info.sizeBytes, info.bandSizeBytes),
    STRAYS_REPORTED_ELSEWHERE,
  );
  if (listed === undefined) throw new SbmError('SBM_NOT_FOUND', `${frozen.bundlePath} has no bands/ folder`, { path: frozen.bundlePath });
  const present = listed.sort((a, b) => a - b);
  const base = { sizeBytes: info.sizeBytes, bandSizeBytes: info.bandSizeBytes, present };
  if (previous === undefined) return { ...base, mode: 'full' };
  if (previous.bandSizeBytes !== info.bandSizeBytes) {
    return { ...base, mode: 'hash-compare', fallbackReason: 'the band size changed since the previous backup' };
  }
  if (previous.token === undefined) return { ...base, mode: 'hash-compare', fallbackReason: 'the previous backup has no tracker token' };
  // Sources here answer at the freeze (a held bundle cannot be asked while frozen); others are asked now.
  const answer = frozen.changed ?? (await source.answerChangedBands(previous.token));
  if (answer.kind === 'refused')
    return { ...base, mode: 'hash-compare', fallbackReason: `the tracker refused the previous token (${answer.reason})` };
  return { ...base, mode: 'tracked', changed: answer.bands };
}

interface BuiltBands {
  readonly bands: Record<string, BandRecord>;
  readonly bandsCopied: number;
  readonly bandsLinked: number;
  readonly bytesWritten: number;
}

async function buildBackup(
  building: string,
  frozen: FrozenPoint,
  plan: BackupPlan,
  previousPath: string | undefined,
  previous: BackupManifest | undefined,
  options: BackupOptions,
): Promise<BuiltBands> {
  const frozenPaths = bundlePaths(frozen.bundlePath);
  const bandsDir = join(building, 'bands');
  await mkdir(bandsDir); // building/ and building/.sbm/ came with the marker (claimBuildFolder)
  // The backup carries the frozen point's plist bytes: a complete bundle that hdiutil opens.
  const plist = await readPlistBytes(frozenPaths.infoPlist, 'Info.plist').catch(() => readPlistBytes(frozenPaths.infoBackup, 'Info.bckup'));
  // An encrypted bundle's token: the backup holds only ciphertext bands, which it unlocks.
  const token = await readTokenBytes(frozenPaths);
  const copyMode = options.copyMode === true;
  const built = { bands: {} as Record<string, BandRecord>, bandsCopied: 0, bandsLinked: 0, bytesWritten: 0 };
  let bandsDone = 0;
  const done = () => options.onProgress?.({ bandsDone: ++bandsDone, bandsTotal: plan.present.length, bytesWritten: built.bytesWritten });
  const copied = (name: string, { record, bytesWritten }: CopiedBand) => {
    built.bands[name] = record;
    built.bytesWritten += bytesWritten;
    built.bandsCopied++;
    done();
  };
  const linked = (name: string, record: BandRecord) => {
    built.bands[name] = record;
    built.bandsLinked++;
  };
  // Sort every band into: link (unchanged per the tracker), copy, or hash first (hash-compare).
  const links: Array<readonly [string, string]> = [];
  const copies: string[] = [];
  const compares: string[] = [];
  for (const bandIndex of plan.present) {
    const name = bandFileName(bandIndex);
    const before = previous?.bands[name];
    if (before === undefined || previousPath === undefined || plan.mode === 'full') copies.push(name);
    else if (plan.mode === 'hash-compare') compares.push(name);
    else if (plan.changed?.has(bandIndex) ?? true) copies.push(name);
    else {
      links.push([join(previousPath, 'bands', name), join(bandsDir, name)]);
      linked(name, before);
    }
  }
  const from = (name: string) => join(frozenPaths.bands, name);
  if (copies.length + compares.length > 1) prewarmHasher();
  const syncs = new PendingSyncs();
  const copyOptions = { syncs };
  const work = settleAll([
    writeNewFileDurably(join(building, 'Info.bckup'), plist),
    writeNewFileDurably(join(building, 'Info.plist'), plist),
    writeNewFileDurably(join(building, 'token'), token),
    writeNewFileDurably(join(building, 'lock'), Buffer.alloc(0)),
    mapLimit(copies, COPY_CONCURRENCY, async (name) => copied(name, await copyBandHashing(from(name), join(bandsDir, name), copyOptions))),
    linkBands(links, copyMode, done),
    mapLimit(compares, COPY_CONCURRENCY, async (name) => {
      const before = previous?.bands[name];
      const to = join(bandsDir, name);
      // Held whole when small: one read serves the hash and, if it differs, the copy.
      const read = await readBandHashing(from(name));
      try {
        const record = read?.record ?? (await hashFile(from(name)));
        if (before === undefined || previousPath === undefined || record.sha256 !== before.sha256) {
          copied(name, read === undefined ? await copyBandHashing(from(name), to, copyOptions) : await writeNewBand(to, read.data, syncs));
          return;
        }
      } finally {
        if (read !== undefined) releaseBandBuffer(read.data);
      }
      linked(name, before);
      await linkBands([[join(previousPath, 'bands', name), to]], copyMode, done);
    }),
  ]);
  await syncs.settleAfter(work);
  return built; // bands/ is fsynced with the manifest (writeManifestAndSync)
}

/**
 * Writes .sbm/manifest.json, then fsyncs it and every folder of the build at once: the entries
 * all exist by now, and concurrent fsyncs share journal commits, which matters on a busy disk.
 */
async function writeManifestAndSync(building: string, manifest: BackupManifest): Promise<void> {
  const handle = await open(join(building, MANIFEST_RELATIVE_PATH), 'wx', 0o644);
  try {
    await writeFully(handle, Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`), 0);
    await settleAll([
      handle.sync(),
      fsyncDirectory(join(building, '.sbm')),
      fsyncDirectory(join(building, 'bands')),
      fsyncDirectory(building),
    ]);
  } finally {
    await handle.close();
  }
}

/** Waits for every task (none is left running behind a failure), then throws the first failure. */
async function settleAll(tasks: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(tasks);
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

function translateWriteError(error: unknown, destination: string): unknown {
  if (isSbmError(error)) return error;
  const errno = (error as NodeJS.ErrnoException).code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return new SbmError(
      'SBM_NO_SPACE',
      `the destination ${destination} is full; the partial backup was removed and no other backup was touched`,
      {
        path: destination,
      },
    );
  }
  return fromSystemError(error, 'backup failed at', destination);
}
