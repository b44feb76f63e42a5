// sbm backup <bundle> s3://BUCKET/PREFIX: an incremental backup into an S3 repository
// (s3-repository.ts), uploading only chunks the repository does not hold yet.
//
//   1. open (or create) the repository; take a shared lease (s3-lease.ts: no thin collects
//      chunks while this run relies on them)
//   2. read the set's newest manifest; freeze the disk and ask the tracker which bands changed
//      since its token (the same planBackup as folder backups: refused -> read every band and
//      compare chunk hashes)
//   3. unchanged bands: their chunk lists are copied from the previous manifest, nothing is read.
//      Other bands are read in chunks (bounded: BAND_LANES bands x CHUNK_LANES chunks in flight);
//      an all-zero chunk is stored nowhere; a chunk whose id the previous manifest names is known
//      to be stored; any other is looked up, and uploaded only when absent. So a run that died
//      leaves its chunks behind and the next run uploads none of them again. A run that may look
//      up many chunks lists the chunk namespace once instead of a HEAD per chunk (one request per
//      1000 chunks stored); the lease keeps every listed chunk stored until the run ends.
//   4. release the frozen point; renew the lease (fail if lost); write the manifest, last, with
//      a conditional create: the backup exists from that moment on, complete. A run that dies
//      before it leaves no manifest, so nothing that looks like a backup.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isAllZero } from '../../block-device.js';
import { bandFileName } from '../../bundle/bundle-paths.js';
import { SbmError } from '../../errors.js';
import { readFully } from '../../fs/read-fully.js';
import { mapLimit } from '../../map-limit.js';
import type { PasswordSource } from '../../bundle/bundle-encryption.js';
import type { WarningSink } from '../../warnings.js';
import { backupStem } from '../backup-set.js';
import { openBandForReading } from '../band-files.js';
import { type BackupPlan, type BackupSource, planBackup } from '../create-backup.js';
import type { ObjectStore } from './object-store.js';
import { type LeaseOptions, acquireLease } from './s3-lease.js';
import { type S3BackupManifest, type S3BackupStats, type S3BandRecord, S3_MANIFEST_KIND, S3_MANIFEST_VERSION } from './s3-manifest.js';
import { S3Repository } from './s3-repository.js';

const BAND_LANES = 4;
const CHUNK_LANES = 4;
/** Possible chunk lookups from which one listing of the chunk namespace replaces a HEAD each. */
export const LIST_FROM_LOOKUPS = 512;
/** A listing is given up past this many chunks per possible lookup (a HEAD each costs less then)... */
const LISTED_PER_LOOKUP = 16;
/** ... or past this many chunks (memory: a 16-hex-digit prefix of each id). */
const MAX_LISTED = 400_000;

export interface S3BackupOptions {
  readonly onWarning?: WarningSink;
  readonly onProgress?: (progress: { bandsDone: number; bandsTotal: number; bytesUploaded: number }) => void;
  readonly lease?: LeaseOptions;
  /** Create the repository encrypted (an existing one must be encrypted too). */
  readonly encrypt?: boolean;
  /** The repository's password, asked only when it is (or is to be made) encrypted. */
  readonly password?: PasswordSource;
  /**
   * How new chunks are looked up: one listing of the chunk namespace, a HEAD each, or (auto)
   * listing when LIST_FROM_LOOKUPS or more lookups may be needed.
   */
  readonly chunkLookup?: 'auto' | 'list' | 'head';
}

export interface S3BackupResult extends S3BackupStats {
  readonly set: string;
  readonly name: string;
  readonly mode: S3BackupManifest['mode'];
  readonly fallbackReason?: string;
}

export async function createS3Backup(
  source: BackupSource,
  store: ObjectStore,
  prefix: string,
  options: S3BackupOptions = {},
): Promise<S3BackupResult> {
  const started = process.hrtime.bigint();
  await refuseEncrypted(source, source.path); // before anything is written to the bucket
  const repository = (await S3Repository.open(store, prefix, {
    create: true,
    ...(options.encrypt === undefined ? {} : { encrypt: options.encrypt }),
    ...(options.password === undefined ? {} : { password: options.password }),
  })) as S3Repository;
  const lease = await acquireLease(repository, 'backup', options.lease);
  try {
    const set = source.name;
    const newest = (await repository.listBackups(set)).at(-1);
    const previous = newest === undefined ? undefined : await repository.readManifest(set, newest.name);
    const frozen = await source.freeze(previous?.token, options);
    let releasing: Promise<void> | undefined;
    const release = () => (releasing ??= frozen.release());
    try {
      const plan = await planBackup(source, frozen, previous);
      if (plan.fallbackReason !== undefined) {
        options.onWarning?.({
          code: 'SBM_BACKUP_FULL_COMPARE',
          message: `${plan.fallbackReason}; reading every band and comparing chunk hashes with the previous backup`,
        });
      }
      const uploaded = await uploadBands(repository, join(frozen.bundlePath, 'bands'), plan, previous, options);
      await release();
      const stats: S3BackupStats = { ...uploaded.stats, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
      const manifest: Omit<S3BackupManifest, 'name'> = {
        kind: S3_MANIFEST_KIND,
        version: S3_MANIFEST_VERSION,
        repository: repository.config.id,
        set,
        source: { path: source.path, name: source.name },
        takenAt: frozen.takenAt.toISOString(),
        sizeBytes: plan.sizeBytes,
        bandSizeBytes: plan.bandSizeBytes,
        chunkSizeBytes: repository.config.chunkSizeBytes,
        ...(frozen.token === undefined ? {} : { token: frozen.token }),
        mode: plan.mode,
        ...(plan.fallbackReason === undefined ? {} : { fallbackReason: plan.fallbackReason }),
        bands: uploaded.bands,
        stats,
      };
      await lease.check(); // every chunk named is stored and no thin can have collected it
      const name = await commitManifest(repository, manifest, backupStem(frozen.takenAt));
      return {
        set,
        name,
        mode: plan.mode,
        ...(plan.fallbackReason === undefined ? {} : { fallbackReason: plan.fallbackReason }),
        ...stats,
      };
    } finally {
      await release();
    }
  } finally {
    await lease.release();
  }
}

/**
 * An encrypted bundle's band files are ciphertext under keys its token holds: chunks of them
 * would restore only together with that token, and would dedupe nothing. Refused; an encrypted
 * repository (--encryption) is the way to keep a disk encrypted in S3.
 */
async function refuseEncrypted(source: BackupSource, bundlePath: string): Promise<void> {
  const token = await stat(join(bundlePath, 'token')).catch(() => undefined);
  if (token !== undefined && token.size > 0) {
    throw new SbmError(
      'SBM_UNSUPPORTED',
      `${source.path} is an encrypted bundle: backing it up to S3 is not supported yet (a folder backup is); nothing was uploaded`,
      { path: source.path },
    );
  }
}

/** Writes the manifest under the first free name (`stem`, `stem-2`, ...): a conditional create. */
async function commitManifest(repository: S3Repository, manifest: Omit<S3BackupManifest, 'name'>, stem: string): Promise<string> {
  for (let counter = 1; ; counter++) {
    const name = counter === 1 ? stem : `${stem}-${counter}`;
    if (await repository.writeManifest({ ...manifest, name })) return name;
  }
}

interface UploadedBands {
  readonly bands: Record<string, S3BandRecord>;
  readonly stats: Omit<S3BackupStats, 'seconds'>;
}

async function uploadBands(
  repository: S3Repository,
  bandsDir: string,
  plan: BackupPlan,
  previous: S3BackupManifest | undefined,
  options: S3BackupOptions,
): Promise<UploadedBands> {
  const chunkSize = repository.config.chunkSizeBytes;
  // Chunk lists line up with the previous backup's only when both cut bands the same way.
  const comparable = previous !== undefined && previous.chunkSizeBytes === chunkSize && previous.bandSizeBytes === plan.bandSizeBytes;
  const known = new Set<string>();
  for (const record of Object.values(previous?.bands ?? {})) for (const id of record.chunks) if (id !== null) known.add(id);
  const stats = { bandsRead: 0, bandsUnchanged: 0, chunksUploaded: 0, chunksReused: 0, bytesRead: 0, bytesUploaded: 0 };
  const listed = await listChunksWhenWorth(repository, plan, previous, options.chunkLookup ?? 'auto');
  const bands: Record<string, S3BandRecord> = {};
  const inFlight = new Map<string, Promise<void>>();
  /** Stores the chunk unless the repository has it (known, uploading now, or found by HEAD). */
  const ensureStored = async (id: string, data: Buffer) => {
    const pending = inFlight.get(id);
    if (known.has(id) || pending !== undefined) {
      stats.chunksReused++;
      await pending;
      return;
    }
    const upload = (async () => {
      const key = repository.chunkKey(id);
      // Absent from the listing: not stored (a prefix found may be another chunk's: HEAD tells).
      const mayExist = listed === undefined || listed.has(id.slice(0, LISTED_PREFIX_CHARS));
      if (mayExist && (await repository.store.head(key)) !== undefined) {
        stats.chunksReused++;
        return;
      }
      const body = await repository.sealChunk(id, data);
      await repository.store.put(key, body);
      stats.chunksUploaded++;
      stats.bytesUploaded += body.length;
    })();
    inFlight.set(id, upload);
    await upload;
    known.add(id);
    inFlight.delete(id);
  };
  let bandsDone = 0;
  const done = () => options.onProgress?.({ bandsDone: ++bandsDone, bandsTotal: plan.present.length, bytesUploaded: stats.bytesUploaded });
  await mapLimit(plan.present, BAND_LANES, async (bandIndex) => {
    const name = bandFileName(bandIndex);
    const before = comparable ? previous?.bands[name] : undefined;
    if (plan.mode === 'tracked' && before !== undefined && plan.changed?.has(bandIndex) === false) {
      bands[name] = before;
      stats.bandsUnchanged++;
      done();
      return;
    }
    const handle = await openBandForReading(join(bandsDir, name));
    try {
      const size = Math.min((await handle.stat()).size, plan.bandSizeBytes);
      const chunks: Array<string | null> = new Array(Math.ceil(size / chunkSize)).fill(null);
      await mapLimit(chunks.keys(), CHUNK_LANES, async (index) => {
        // A chunk is its whole range of the disk, zeros past the band file's end included: its
        // id must not change when a later write only makes the band file longer.
        const chunk = Buffer.allocUnsafe(Math.min(chunkSize, plan.bandSizeBytes - index * chunkSize));
        stats.bytesRead += await readFully(handle, chunk, index * chunkSize); // zero-fills past the end
        if (isAllZero(chunk)) return;
        const id = repository.chunkId(chunk);
        chunks[index] = id;
        if (before?.chunks[index] === id) stats.chunksReused++;
        else await ensureStored(id, chunk);
      });
      bands[name] = { size, chunks };
      stats.bandsRead++;
      done();
    } finally {
      await handle.close();
    }
  });
  return { bands: sortedByBand(bands), stats };
}

const LISTED_PREFIX_CHARS = 16;

/**
 * The 16-hex-digit prefixes of every stored chunk id, when this run may look up enough chunks
 * for one listing to cost less than a HEAD each; undefined otherwise (or when the repository
 * holds too many chunks for that to pay).
 */
async function listChunksWhenWorth(
  repository: S3Repository,
  plan: BackupPlan,
  previous: S3BackupManifest | undefined,
  mode: 'auto' | 'list' | 'head',
): Promise<Set<string> | undefined> {
  if (mode === 'head') return undefined;
  const chunksPerBand = Math.ceil(plan.bandSizeBytes / repository.config.chunkSizeBytes);
  const bandsToRead =
    plan.mode === 'tracked' && previous !== undefined
      ? plan.present.filter((band) => plan.changed?.has(band) !== false).length
      : plan.present.length;
  const lookups = bandsToRead * chunksPerBand;
  if (mode === 'auto' && lookups < LIST_FROM_LOOKUPS) return undefined;
  const limit = mode === 'list' ? MAX_LISTED : Math.min(MAX_LISTED, lookups * LISTED_PER_LOOKUP);
  const prefixes = new Set<string>();
  for await (const chunk of repository.listChunks()) {
    prefixes.add(chunk.id.slice(0, LISTED_PREFIX_CHARS));
    if (prefixes.size > limit) return undefined;
  }
  return prefixes;
}

function sortedByBand(bands: Record<string, S3BandRecord>): Record<string, S3BandRecord> {
  const names = Object.keys(bands).sort((a, b) => Number.parseInt(a, 16) - Number.parseInt(b, 16));
  return Object.fromEntries(names.map((name) => [name, bands[name] as S3BandRecord]));
}
