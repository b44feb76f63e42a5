// One S3 backup as a read-only BlockDevice: what restore copies from (to a bundle, raw or VMDK)
// through the same copy engine as convert, and what a read-only NBD mount can serve.
//
// A read maps each piece of its range to (band, chunk): a band absent from the manifest is a
// hole, a null chunk is zeros, any other chunk is fetched (whole object, re-hashed: damage fails
// the read with SBM_CORRUPT rather than restoring wrong bytes) into a bounded LRU cache, with one
// fetch per chunk however many readers want it at once.

import { type BlockDevice, type Extent, checkRange, pushExtent } from '../../block-device.js';
import { bandFileName } from '../../bundle/bundle-paths.js';
import { SbmError } from '../../errors.js';
import { mapLimit } from '../../map-limit.js';
import type { S3BackupManifest } from './s3-manifest.js';
import type { S3Repository } from './s3-repository.js';

const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
const FETCH_LANES = 8;

export class S3BackupDevice implements BlockDevice {
  readonly readOnly = true;
  readonly minimumBlockSize = 1;
  readonly sizeBytes: number;
  readonly preferredBlockSize: number;
  /** Bytes of chunk objects fetched so far (after decompression). */
  bytesFetched = 0;
  readonly #repository: S3Repository;
  readonly #manifest: S3BackupManifest;
  readonly #cache = new Map<string, Buffer>(); // insertion order = least recently used first
  readonly #fetching = new Map<string, Promise<Buffer>>();
  readonly #cacheLimitBytes: number;
  #cachedBytes = 0;
  #closed = false;

  readonly #onClose: (() => Promise<void>) | undefined;

  constructor(
    repository: S3Repository,
    manifest: S3BackupManifest,
    options: { readonly cacheBytes?: number; readonly onClose?: () => Promise<void> } = {},
  ) {
    this.#repository = repository;
    this.#onClose = options.onClose;
    this.#manifest = manifest;
    this.sizeBytes = manifest.sizeBytes;
    this.preferredBlockSize = manifest.chunkSizeBytes;
    this.#cacheLimitBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.#assertOpen();
    checkRange(this.sizeBytes, offset, target.length);
    const pieces = [...this.#pieces(offset, target.length)];
    await mapLimit(pieces, FETCH_LANES, async (piece) => {
      const destination = target.subarray(piece.at - offset, piece.at - offset + piece.length);
      if (piece.chunk === undefined) {
        destination.fill(0);
        return;
      }
      const data = await this.#chunk(piece.chunk);
      const from = piece.inChunk;
      const available = Math.max(0, Math.min(piece.length, data.length - from));
      destination.set(data.subarray(from, from + available));
      destination.fill(0, available);
    });
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.#assertOpen();
    checkRange(this.sizeBytes, offset, length);
    const list: Extent[] = [];
    for (const piece of this.#pieces(offset, length)) {
      pushExtent(list, { offset: piece.at, length: piece.length, kind: piece.kind });
    }
    return list;
  }

  /** Splits a range at band and chunk boundaries, naming what backs each piece. */
  *#pieces(offset: number, length: number) {
    const { bandSizeBytes: bandSize, chunkSizeBytes: chunkSize, bands } = this.#manifest;
    const end = offset + length;
    for (let at = offset; at < end; ) {
      const bandIndex = Math.floor(at / bandSize);
      const inBand = at - bandIndex * bandSize;
      const record = bands[bandFileName(bandIndex)];
      if (record === undefined || inBand >= record.size) {
        // past the band's file (or no file at all): zeros up to the band's end
        const pieceEnd = Math.min(end, (bandIndex + 1) * bandSize);
        yield { at, length: pieceEnd - at, kind: 'hole' as const, chunk: undefined, inChunk: 0 };
        at = pieceEnd;
        continue;
      }
      const chunkIndex = Math.floor(inBand / chunkSize);
      const chunkEnd = bandIndex * bandSize + Math.min(record.size, (chunkIndex + 1) * chunkSize);
      const pieceEnd = Math.min(end, chunkEnd);
      const chunk = record.chunks[chunkIndex] ?? undefined;
      const kind = chunk === undefined ? ('zero' as const) : ('data' as const);
      yield { at, length: pieceEnd - at, kind, chunk, inChunk: inBand - chunkIndex * chunkSize };
      at = pieceEnd;
    }
  }

  async #chunk(id: string): Promise<Buffer> {
    const cached = this.#cache.get(id);
    if (cached !== undefined) {
      this.#cache.delete(id);
      this.#cache.set(id, cached); // most recently used now
      return cached;
    }
    const pending = this.#fetching.get(id);
    if (pending !== undefined) return pending;
    const fetching = this.#repository.readChunk(id).then((data) => {
      this.bytesFetched += data.length;
      this.#remember(id, data);
      return data;
    });
    this.#fetching.set(id, fetching);
    try {
      return await fetching;
    } finally {
      this.#fetching.delete(id);
    }
  }

  #remember(id: string, data: Buffer): void {
    this.#cache.set(id, data);
    this.#cachedBytes += data.length;
    for (const [oldest, chunk] of this.#cache) {
      if (this.#cachedBytes <= this.#cacheLimitBytes) break;
      this.#cache.delete(oldest);
      this.#cachedBytes -= chunk.length;
    }
  }

  async write(): Promise<void> {
    throw new SbmError('SBM_READ_ONLY', 'an S3 backup is read-only');
  }

  async writeZeroes(): Promise<void> {
    throw new SbmError('SBM_READ_ONLY', 'an S3 backup is read-only');
  }

  async trim(): Promise<void> {
    throw new SbmError('SBM_READ_ONLY', 'an S3 backup is read-only');
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cache.clear();
    this.#cachedBytes = 0;
    await this.#onClose?.(); // e.g. releases the repository lease held while reading
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new SbmError('SBM_CLOSED', 'the S3 backup device is closed');
  }
}
