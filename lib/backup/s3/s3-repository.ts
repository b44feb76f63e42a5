// An S3 backup repository: everything sbm keeps under s3://BUCKET/PREFIX/.
//
//   PREFIX/sbm-repository.json          written once (conditional create): id, chunk size, format
//   PREFIX/lease.json                   who is using the repository (s3-lease.ts)
//   PREFIX/chunks/<id[0..2]>/<id>       chunk data, content-addressed: id = sha256 of the plain
//                                       chunk, so equal data is stored once, across backups and
//                                       across disks backed up to the same prefix
//   PREFIX/backups/<set>/<name>.json    one manifest per backup (s3-manifest.ts), written last
//
// A chunk object is one format byte and the payload: 0 = the chunk as is, 1 = deflate-raw of it
// (used when it saves at least 1/8). Reading a chunk re-hashes it, so damage is never restored.

import { createHash, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import { SbmError } from '../../errors.js';
import { BACKUP_SUFFIX, parseBackupName } from '../backup-set.js';
import type { ObjectStore } from './object-store.js';
import { type S3BackupManifest, checkS3Manifest } from './s3-manifest.js';

export const REPOSITORY_KIND = 'sbm-s3-repository';
export const REPOSITORY_VERSION = 1;
export const CONFIG_NAME = 'sbm-repository.json';
export const DEFAULT_CHUNK_SIZE_BYTES = 1024 * 1024;
const FORMAT_RAW = 0;
const FORMAT_DEFLATE = 1;
const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

export interface RepositoryConfig {
  readonly kind: typeof REPOSITORY_KIND;
  readonly version: number;
  readonly id: string;
  readonly chunkSizeBytes: number;
  readonly createdAt: string;
}

export interface S3BackupEntry {
  readonly set: string;
  readonly name: string;
  readonly time: Date;
  readonly key: string;
}

export class S3Repository {
  readonly store: ObjectStore;
  /** Key prefix of the repository, '' or ending in '/'. */
  readonly base: string;
  readonly config: RepositoryConfig;

  private constructor(store: ObjectStore, base: string, config: RepositoryConfig) {
    this.store = store;
    this.base = base;
    this.config = config;
  }

  /** The repository at `prefix`, created there when absent and `create` is set; else undefined. */
  static async open(store: ObjectStore, prefix: string, options: { readonly create?: boolean } = {}): Promise<S3Repository | undefined> {
    const base = prefix === '' ? '' : `${prefix}/`;
    const key = base + CONFIG_NAME;
    // A GET, not a HEAD: only a GET's answer tells a missing bucket from a missing object.
    const found = await store.get(key);
    if (found !== undefined) return new S3Repository(store, base, checkConfig(found.body, store.describe(key)));
    if (options.create !== true) return undefined;
    const config: RepositoryConfig = {
      kind: REPOSITORY_KIND,
      version: REPOSITORY_VERSION,
      id: randomUUID(),
      chunkSizeBytes: DEFAULT_CHUNK_SIZE_BYTES,
      createdAt: new Date().toISOString(),
    };
    const made = await store.putIf(key, Buffer.from(`${JSON.stringify(config, null, 1)}\n`), { ifNoneMatch: true });
    if (made !== undefined) return new S3Repository(store, base, config);
    return S3Repository.open(store, prefix); // another run created it a moment ago: use theirs
  }

  chunkKey(id: string): string {
    return `${this.base}chunks/${id.slice(0, 2)}/${id}`;
  }

  manifestKey(set: string, name: string): string {
    return `${this.base}backups/${set}/${name}.json`;
  }

  get leaseKey(): string {
    return `${this.base}lease.json`;
  }

  /** Content id of a plain chunk. */
  chunkId(data: Uint8Array): string {
    return createHash('sha256').update(data).digest('hex');
  }

  /** The object body stored for a plain chunk. */
  async sealChunk(data: Uint8Array): Promise<Buffer> {
    const packed = await deflate(data, { level: 1 });
    if (packed.length <= data.length - data.length / 8) return Buffer.concat([Buffer.from([FORMAT_DEFLATE]), packed]);
    return Buffer.concat([Buffer.from([FORMAT_RAW]), data]);
  }

  /** The plain chunk of an object body; SBM_CORRUPT when it does not hash to `id`. */
  async openChunk(id: string, body: Buffer): Promise<Buffer> {
    const where = this.store.describe(this.chunkKey(id));
    let data: Buffer;
    if (body[0] === FORMAT_RAW) data = body.subarray(1);
    else if (body[0] === FORMAT_DEFLATE) {
      data = await inflate(body.subarray(1)).catch(() => {
        throw new SbmError('SBM_CORRUPT', `${where} does not inflate`, { key: where, chunk: id });
      });
    } else throw new SbmError('SBM_CORRUPT', `${where} has an unknown format byte ${body[0]}`, { key: where, chunk: id });
    if (this.chunkId(data) !== id) throw new SbmError('SBM_CORRUPT', `${where} does not match its hash`, { key: where, chunk: id });
    return data;
  }

  /** Reads and checks one chunk; SBM_CORRUPT when it is missing or damaged. */
  async readChunk(id: string): Promise<Buffer> {
    const found = await this.store.get(this.chunkKey(id));
    if (found === undefined) {
      const where = this.store.describe(this.chunkKey(id));
      throw new SbmError('SBM_CORRUPT', `${where} is missing`, { key: where, chunk: id });
    }
    return this.openChunk(id, found.body);
  }

  /** Complete backups (those with a manifest), of one set or all, oldest first. */
  async listBackups(set?: string): Promise<S3BackupEntry[]> {
    const from = `${this.base}backups/${set === undefined ? '' : `${set}/`}`;
    const entries: S3BackupEntry[] = [];
    for await (const object of this.store.list(from)) {
      const match = /^([^/]+)\/([^/]+)\.json$/.exec(object.key.slice(`${this.base}backups/`.length));
      const time = match === null ? undefined : parseBackupName(`${match[2]}${BACKUP_SUFFIX}`);
      if (match === null || time === undefined) continue; // not sbm's: ignored, never deleted
      entries.push({ set: match[1] ?? '', name: match[2] ?? '', time, key: object.key });
    }
    return entries.sort((a, b) => a.time.getTime() - b.time.getTime() || suffixOf(a.name) - suffixOf(b.name) || a.set.localeCompare(b.set));
  }

  async readManifest(set: string, name: string): Promise<S3BackupManifest> {
    const key = this.manifestKey(set, name);
    const found = await this.store.get(key);
    const where = this.store.describe(key);
    if (found === undefined) throw new SbmError('SBM_NOT_A_BACKUP', `${where} does not exist: no such backup`, { key: where });
    let parsed: unknown;
    try {
      parsed = JSON.parse(found.body.toString('utf8'));
    } catch (error) {
      throw new SbmError('SBM_CORRUPT', `${where} is not JSON: ${(error as Error).message}`, { key: where });
    }
    return checkS3Manifest(parsed, where, this.config.id);
  }

  /** Writes a manifest only if no backup of that name exists; false when one does. */
  async writeManifest(manifest: S3BackupManifest): Promise<boolean> {
    const body = Buffer.from(`${JSON.stringify(manifest)}\n`);
    return (await this.store.putIf(this.manifestKey(manifest.set, manifest.name), body, { ifNoneMatch: true })) !== undefined;
  }

  /** Chunk ids of every chunk object in the repository, with their stored sizes. */
  async *listChunks(): AsyncIterable<{ readonly id: string; readonly key: string; readonly sizeBytes: number }> {
    for await (const object of this.store.list(`${this.base}chunks/`)) {
      const id = /\/([0-9a-f]{64})$/.exec(object.key)?.[1];
      if (id !== undefined && object.key === this.chunkKey(id)) yield { id, key: object.key, sizeBytes: object.sizeBytes };
    }
  }
}

function suffixOf(name: string): number {
  return Number(/-(\d+)$/.exec(name.slice(17))?.[1] ?? 1);
}

function checkConfig(body: Buffer, where: string): RepositoryConfig {
  let config: Partial<RepositoryConfig>;
  try {
    config = JSON.parse(body.toString('utf8')) as Partial<RepositoryConfig>;
  } catch {
    throw new SbmError('SBM_CORRUPT', `${where} is not JSON`, { key: where });
  }
  if (config.kind !== REPOSITORY_KIND || typeof config.id !== 'string') {
    throw new SbmError('SBM_NOT_A_BACKUP', `${where} is not an sbm repository configuration`, { key: where });
  }
  if (config.version !== REPOSITORY_VERSION) {
    throw new SbmError('SBM_UNSUPPORTED', `${where}: repository format version ${String(config.version)} is not supported`, { key: where });
  }
  const chunk = config.chunkSizeBytes;
  if (typeof chunk !== 'number' || !Number.isSafeInteger(chunk) || chunk < 4096 || chunk > 64 * 1024 * 1024 || chunk % 4096 !== 0) {
    throw new SbmError('SBM_CORRUPT', `${where}: chunk size ${String(chunk)} is not a multiple of 4 KiB up to 64 MiB`, { key: where });
  }
  return config as RepositoryConfig;
}
