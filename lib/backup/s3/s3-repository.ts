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
// (used when it saves at least 1/8; a chunk whose first 64 KiB do not compress is stored as is).
// Reading a chunk re-hashes it, so damage is never restored.
//
// An encrypted repository (format version 2, s3-crypto.ts) differs in four places: a chunk's id
// is a keyed hash (HMAC) of it; a chunk object is format byte 2 and the sealed (AES-256-GCM)
// plain object of above; manifests and the lease are sealed; and <set> in a manifest key is
// "s-" and a keyed hash of the set name (the name itself is inside the sealed manifest).

import { createHash, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import { SbmError } from '../../errors.js';
import { BACKUP_SUFFIX, parseBackupName } from '../backup-set.js';
import type { PasswordSource } from '../../bundle/bundle-encryption.js';
import type { ObjectStore } from './object-store.js';
import {
  type RepositoryEncryption,
  type RepositoryKeys,
  checkRepositoryEncryption,
  keyedHash,
  newRepositoryEncryption,
  open as openSealed,
  seal,
  unlockRepository,
} from './s3-crypto.js';
import { type S3BackupManifest, checkS3Manifest } from './s3-manifest.js';

export const REPOSITORY_KIND = 'sbm-s3-repository';
export const REPOSITORY_VERSION = 1;
/** Version of an encrypted repository: an sbm that knows only version 1 refuses it. */
export const ENCRYPTED_REPOSITORY_VERSION = 2;
export const CONFIG_NAME = 'sbm-repository.json';
export const DEFAULT_CHUNK_SIZE_BYTES = 1024 * 1024;
const FORMAT_RAW = 0;
const FORMAT_DEFLATE = 1;
const FORMAT_SEALED = 2;
const COMPRESSIBILITY_SAMPLE_BYTES = 64 * 1024;
const SET_TAG_PREFIX = 's-';
const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

export interface RepositoryConfig {
  readonly kind: typeof REPOSITORY_KIND;
  readonly version: number;
  readonly id: string;
  readonly chunkSizeBytes: number;
  readonly createdAt: string;
  readonly encryption?: RepositoryEncryption;
}

export interface OpenRepositoryOptions {
  /** Create the repository when absent. */
  readonly create?: boolean;
  /** Create it encrypted; an existing repository must then be encrypted too. */
  readonly encrypt?: boolean;
  /** Asked only when the repository is (or is to be made) encrypted. */
  readonly password?: PasswordSource;
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
  /** Keys of an encrypted repository; undefined for a plain one. */
  readonly #keys: RepositoryKeys | undefined;
  /** Set names of the set tags seen so far (encrypted repositories). */
  readonly #setNames = new Map<string, string>();

  private constructor(store: ObjectStore, base: string, config: RepositoryConfig, keys: RepositoryKeys | undefined) {
    this.store = store;
    this.base = base;
    this.config = config;
    this.#keys = keys;
  }

  get encrypted(): boolean {
    return this.#keys !== undefined;
  }

  /** The repository at `prefix`, created there when absent and `create` is set; else undefined. */
  static async open(store: ObjectStore, prefix: string, options: OpenRepositoryOptions = {}): Promise<S3Repository | undefined> {
    const base = prefix === '' ? '' : `${prefix}/`;
    const key = base + CONFIG_NAME;
    const where = store.describe(key);
    // A GET, not a HEAD: only a GET's answer tells a missing bucket from a missing object.
    const found = await store.get(key);
    if (found !== undefined) {
      const config = checkConfig(found.body, where);
      if (options.encrypt === true && config.encryption === undefined) {
        throw new SbmError(
          'SBM_USAGE',
          `${store.describe(base)} is a repository without encryption; --encryption applies only when a repository is created ` +
            '(back up to a new prefix to encrypt); nothing was uploaded',
        );
      }
      const keys =
        config.encryption === undefined ? undefined : await unlockRepository(config.encryption, await passwordFor(options, where), where);
      return new S3Repository(store, base, config, keys);
    }
    if (options.create !== true) return undefined;
    const made = options.encrypt === true ? await newRepositoryEncryption(await passwordFor(options, where)) : undefined;
    const config: RepositoryConfig = {
      kind: REPOSITORY_KIND,
      version: made === undefined ? REPOSITORY_VERSION : ENCRYPTED_REPOSITORY_VERSION,
      id: randomUUID(),
      chunkSizeBytes: DEFAULT_CHUNK_SIZE_BYTES,
      createdAt: new Date().toISOString(),
      ...(made === undefined ? {} : { encryption: made.encryption }),
    };
    if (await store.putIf(key, Buffer.from(`${JSON.stringify(config, null, 1)}\n`), { ifNoneMatch: true })) {
      return new S3Repository(store, base, config, made?.keys);
    }
    return S3Repository.open(store, prefix, { ...options, create: false }); // another run created it a moment ago: use theirs
  }

  chunkKey(id: string): string {
    return `${this.base}chunks/${id.slice(0, 2)}/${id}`;
  }

  manifestKey(set: string, name: string): string {
    return `${this.base}backups/${this.#setPart(set)}/${name}.json`;
  }

  /** A set's folder name under backups/: the name itself, or a keyed hash of it when encrypted. */
  #setPart(set: string): string {
    if (this.#keys === undefined) return set;
    const tag = SET_TAG_PREFIX + keyedHash(this.#keys.name, set).slice(0, 32);
    this.#setNames.set(tag, set);
    return tag;
  }

  get leaseKey(): string {
    return `${this.base}lease.json`;
  }

  /** Content id of a plain chunk. */
  chunkId(data: Uint8Array): string {
    if (this.#keys !== undefined) return keyedHash(this.#keys.id, data);
    return createHash('sha256').update(data).digest('hex');
  }

  /** The object body stored for a plain chunk whose id is `id`. */
  async sealChunk(id: string, data: Uint8Array): Promise<Buffer> {
    const packed = (await worthCompressing(data)) ? await deflate(data, { level: 1 }) : undefined;
    const body =
      packed !== undefined && packed.length <= data.length - data.length / 8
        ? Buffer.concat([Buffer.from([FORMAT_DEFLATE]), packed])
        : Buffer.concat([Buffer.from([FORMAT_RAW]), data]);
    if (this.#keys === undefined) return body;
    return Buffer.concat([Buffer.from([FORMAT_SEALED]), seal(this.#keys.data, body, this.#relative(this.chunkKey(id)))]);
  }

  /** The plain chunk of an object body; SBM_CORRUPT when it does not hash to `id`. */
  async openChunk(id: string, stored: Buffer): Promise<Buffer> {
    const where = this.store.describe(this.chunkKey(id));
    let body = stored;
    if (this.#keys !== undefined) {
      // Only sealed objects: a plain one in an encrypted repository was put there by someone else.
      const opened =
        body[0] === FORMAT_SEALED ? openSealed(this.#keys.data, body.subarray(1), this.#relative(this.chunkKey(id))) : undefined;
      if (opened === undefined) throw new SbmError('SBM_CORRUPT', `${where} does not authenticate`, { key: where, chunk: id });
      body = opened;
    }
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
    const from = `${this.base}backups/${set === undefined ? '' : `${this.#setPart(set)}/`}`;
    const entries: S3BackupEntry[] = [];
    for await (const object of this.store.list(from)) {
      const match = /^([^/]+)\/([^/]+)\.json$/.exec(object.key.slice(`${this.base}backups/`.length));
      const time = match === null ? undefined : parseBackupName(`${match[2]}${BACKUP_SUFFIX}`);
      if (match === null || time === undefined) continue; // not sbm's: ignored, never deleted
      const part = match[1] ?? '';
      if (this.#keys !== undefined && !part.startsWith(SET_TAG_PREFIX)) continue;
      entries.push({ set: set ?? (await this.#setNameOf(part, object.key)), name: match[2] ?? '', time, key: object.key });
    }
    return entries.sort((a, b) => a.time.getTime() - b.time.getTime() || suffixOf(a.name) - suffixOf(b.name) || a.set.localeCompare(b.set));
  }

  async readManifest(set: string, name: string): Promise<S3BackupManifest> {
    const manifest = await this.#readManifestAt(this.manifestKey(set, name));
    if (manifest.set !== set || manifest.name !== name) {
      const where = this.store.describe(this.manifestKey(set, name));
      throw new SbmError('SBM_CORRUPT', `${where} holds the manifest of another backup (${manifest.set}/${manifest.name})`, { key: where });
    }
    return manifest;
  }

  /** The set name behind a set folder of an encrypted repository, read from one of its manifests. */
  async #setNameOf(part: string, manifestKey: string): Promise<string> {
    if (this.#keys === undefined) return part;
    const known = this.#setNames.get(part);
    if (known !== undefined) return known;
    const { set } = await this.#readManifestAt(manifestKey);
    if (this.#setPart(set) !== part) {
      const where = this.store.describe(manifestKey);
      throw new SbmError('SBM_CORRUPT', `${where} names set "${set}", which is not the set it is stored under`, { key: where });
    }
    return set;
  }

  async #readManifestAt(key: string): Promise<S3BackupManifest> {
    const found = await this.store.get(key);
    const where = this.store.describe(key);
    if (found === undefined) throw new SbmError('SBM_NOT_A_BACKUP', `${where} does not exist: no such backup`, { key: where });
    const body = this.openDocument(key, found.body);
    if (body === undefined) throw new SbmError('SBM_CORRUPT', `${where} does not authenticate`, { key: where });
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (error) {
      throw new SbmError('SBM_CORRUPT', `${where} is not JSON: ${(error as Error).message}`, { key: where });
    }
    return checkS3Manifest(parsed, where, this.config.id);
  }

  /** Writes a manifest only if no backup of that name exists; false when one does. */
  async writeManifest(manifest: S3BackupManifest): Promise<boolean> {
    const key = this.manifestKey(manifest.set, manifest.name);
    const body = this.sealDocument(key, Buffer.from(`${JSON.stringify(manifest)}\n`));
    return (await this.store.putIf(key, body, { ifNoneMatch: true })) !== undefined;
  }

  /** A small object's stored body (a manifest, the lease): sealed in an encrypted repository. */
  sealDocument(key: string, plain: Buffer): Buffer {
    return this.#keys === undefined ? plain : seal(this.#keys.data, plain, this.#relative(key));
  }

  /** The plain body of a small object, or undefined when it does not authenticate. */
  openDocument(key: string, stored: Buffer): Buffer | undefined {
    return this.#keys === undefined ? stored : openSealed(this.#keys.data, stored, this.#relative(key));
  }

  /** A key relative to the repository: what a sealed object is bound to. */
  #relative(key: string): string {
    return key.slice(this.base.length);
  }

  /** Chunk ids of every chunk object in the repository, with their stored sizes. */
  async *listChunks(): AsyncIterable<{ readonly id: string; readonly key: string; readonly sizeBytes: number }> {
    for await (const object of this.store.list(`${this.base}chunks/`)) {
      const id = /\/([0-9a-f]{64})$/.exec(object.key)?.[1];
      if (id !== undefined && object.key === this.chunkKey(id)) yield { id, key: object.key, sizeBytes: object.sizeBytes };
    }
  }
}

/**
 * Whether deflating a chunk may save 1/8: its first 64 KiB are tried first. Most data of a disk
 * that does not compress (already compressed files, encrypted volumes, media) is found so at a
 * sixteenth of the cost of deflating the whole chunk for nothing.
 */
async function worthCompressing(data: Uint8Array): Promise<boolean> {
  if (data.length <= COMPRESSIBILITY_SAMPLE_BYTES) return true;
  const sample = data.subarray(0, COMPRESSIBILITY_SAMPLE_BYTES);
  return (await deflate(sample, { level: 1 })).length <= sample.length - sample.length / 8;
}

async function passwordFor(options: OpenRepositoryOptions, where: string): Promise<Uint8Array> {
  const password = await options.password?.();
  if (password === undefined) {
    throw new SbmError('SBM_ENCRYPTED', `${where} is an encrypted repository: give its password with --stdinpass, or run at a terminal`, {
      key: where,
    });
  }
  if (password.length === 0) throw new SbmError('SBM_USAGE', 'an encrypted repository needs a password that is not empty');
  return password;
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
  const encrypted = config.version === ENCRYPTED_REPOSITORY_VERSION;
  if (config.version !== REPOSITORY_VERSION && !encrypted) {
    throw new SbmError('SBM_UNSUPPORTED', `${where}: repository format version ${String(config.version)} is not supported`, { key: where });
  }
  if (encrypted) checkRepositoryEncryption(config.encryption, where);
  else if (config.encryption !== undefined)
    throw new SbmError('SBM_CORRUPT', `${where}: version 1 with encryption settings`, { key: where });
  const chunk = config.chunkSizeBytes;
  if (typeof chunk !== 'number' || !Number.isSafeInteger(chunk) || chunk < 4096 || chunk > 64 * 1024 * 1024 || chunk % 4096 !== 0) {
    throw new SbmError('SBM_CORRUPT', `${where}: chunk size ${String(chunk)} is not a multiple of 4 KiB up to 64 MiB`, { key: where });
  }
  return config as RepositoryConfig;
}
