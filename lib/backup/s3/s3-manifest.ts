// The manifest of one S3 backup: backups/<set>/<name>.json in the repository, written last (a
// backup exists only once its manifest does). It lists, per band, the band file's size and the
// content hash of each chunk of it (null: the chunk is all zeros and stored nowhere), plus the
// tracker token of the frozen point, which the next backup asks the tracker about.
//
//   band n covers [n*bandSizeBytes, n*bandSizeBytes + size); chunk i of it is the band's bytes
//   [i*chunkSizeBytes, min((i+1)*chunkSizeBytes, bandSizeBytes)), zeros past `size` included
//   (so growing a band file does not change its last chunk's id); a band absent from `bands`
//   reads as zeros (a hole), as a band file missing from a bundle does.

import { SbmError } from '../../errors.js';
import type { BackupMode } from '../backup-manifest.js';

export const S3_MANIFEST_KIND = 'sbm-s3-backup';
export const S3_MANIFEST_VERSION = 1;

export interface S3BandRecord {
  readonly size: number;
  /** Chunk ids (lowercase hex), null for an all-zero chunk. */
  readonly chunks: ReadonlyArray<string | null>;
}

export interface S3BackupStats {
  readonly bandsRead: number;
  readonly bandsUnchanged: number;
  readonly chunksUploaded: number;
  readonly chunksReused: number;
  readonly bytesRead: number;
  /** Bytes of chunk objects this run wrote (after compression and encryption). */
  readonly bytesUploaded: number;
  readonly seconds: number;
}

export interface S3BackupManifest {
  readonly kind: typeof S3_MANIFEST_KIND;
  readonly version: number;
  /** Repository id: a manifest copied into another repository is refused. */
  readonly repository: string;
  readonly set: string;
  readonly name: string;
  readonly source: { readonly path: string; readonly name: string };
  readonly takenAt: string;
  readonly sizeBytes: number;
  readonly bandSizeBytes: number;
  readonly chunkSizeBytes: number;
  readonly token?: string;
  readonly mode: BackupMode;
  readonly fallbackReason?: string;
  /** Keyed by band name (lowercase hex, as in bands/). */
  readonly bands: Readonly<Record<string, S3BandRecord>>;
  readonly stats: S3BackupStats;
}

/** Checks the shape of a parsed manifest (input is hostile: a bucket may hold anything). */
export function checkS3Manifest(value: unknown, where: string, repositoryId: string): S3BackupManifest {
  const manifest = value as Partial<S3BackupManifest> | null;
  const bad = (why: string) => new SbmError('SBM_CORRUPT', `${where} is not an sbm S3 backup manifest: ${why}`, { key: where });
  if (manifest === null || typeof manifest !== 'object' || manifest.kind !== S3_MANIFEST_KIND) throw bad('wrong kind');
  if (manifest.version !== S3_MANIFEST_VERSION) throw bad(`version ${String(manifest.version)}`);
  if (manifest.repository !== repositoryId) throw bad('it belongs to another repository');
  for (const field of ['sizeBytes', 'bandSizeBytes', 'chunkSizeBytes'] as const) {
    const number = manifest[field];
    if (typeof number !== 'number' || !Number.isSafeInteger(number) || number <= 0) throw bad(`${field} is not a positive integer`);
  }
  if (typeof manifest.bands !== 'object' || manifest.bands === null) throw bad('no bands');
  const bandSize = manifest.bandSizeBytes ?? 0;
  const chunkSize = manifest.chunkSizeBytes ?? 0;
  const bandCount = Math.ceil((manifest.sizeBytes ?? 0) / bandSize);
  for (const [name, record] of Object.entries(manifest.bands)) {
    const index = /^[0-9a-f]{1,13}$/.test(name) ? Number.parseInt(name, 16) : Number.NaN;
    if (!(index < bandCount)) throw bad(`band "${name}" is not a band of the disk`);
    const { size, chunks } = record ?? ({} as Partial<S3BandRecord>);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > bandSize) throw bad(`band ${name} has a bad size`);
    if (!Array.isArray(chunks) || chunks.length !== Math.ceil(size / chunkSize)) throw bad(`band ${name} has a bad chunk list`);
    if (!chunks.every((chunk) => chunk === null || (typeof chunk === 'string' && /^[0-9a-f]{64}$/.test(chunk)))) {
      throw bad(`band ${name} names a chunk that is not a 64-digit hex id`);
    }
  }
  return manifest as S3BackupManifest;
}
