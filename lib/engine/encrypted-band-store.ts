// The band store of an encrypted bundle: band files hold ciphertext, everything above this class
// (the bundle, tracker, snapshots, NBD) sees plaintext. The rules of BandStore still hold (missing
// band = zeros, copy-on-write of shared bands, change records before changes, whole-band trims
// delete), with the chunk as the unit of I/O on disk (reference §6.1):
//
//   band file  |chunk 0|chunk 1|...|chunk k|          each chunk encrypted alone, numbered from 0
//   request        [-------- write --------]          edge chunks: read, decrypt, modify, encrypt
//
//   - bytes past a band's end read as zeros; a write that starts past the end first fills the gap
//     with encrypted zero chunks (a file hole would decrypt to garbage);
//   - a band never grows by chunks of plaintext zeros beyond the data written;
//   - a file length that is not whole chunks is damage: reads of the partial chunk fail.
// Unencrypted bundles never reach this file: their hot path is BandStore's alone.

import { isAllZero } from '../block-device.js';
import { bandFileName } from '../bundle/bundle-paths.js';
import type { ChunkCipher } from '../bundle/chunk-cipher.js';
import { SbmError } from '../errors.js';
import { readFullyFd, writeFullyFd } from '../fs/read-fully.js';
import type { BandLease } from './band-pool.js';
import { BandStore, type BandStoreOptions } from './band-store.js';

/** Zeros are encrypted and written in pieces of this size (gaps and partial trims). */
const ZERO_PIECE_BYTES = 1024 * 1024;

export class EncryptedBandStore extends BandStore {
  readonly #cipher: ChunkCipher;
  readonly #chunkBytes: number;

  constructor(options: BandStoreOptions, cipher: ChunkCipher) {
    super(options);
    if (options.bandSizeBytes % cipher.chunkBytes !== 0) {
      throw new SbmError('SBM_CORRUPT', `band size ${options.bandSizeBytes} is not a whole number of ${cipher.chunkBytes}-byte chunks`);
    }
    this.#cipher = cipher;
    this.#chunkBytes = cipher.chunkBytes;
  }

  override async read(bandIndex: number, offsetInBand: number, target: Uint8Array): Promise<void> {
    if (!this.present.has(bandIndex)) {
      target.fill(0);
      return;
    }
    const lease = this.pool.leaseOpen(bandIndex) ?? (await this.pool.acquire(bandIndex, false));
    if (lease === undefined) {
      target.fill(0); // deleted between the check and the open: it reads as zeros now
      return;
    }
    try {
      await this.#readPlain(lease, offsetInBand, target);
    } finally {
      const closing = this.pool.release(lease);
      if (closing !== undefined) await closing;
    }
  }

  override async write(bandIndex: number, offsetInBand: number, data: Uint8Array, durable: boolean): Promise<void> {
    await this.withBandLock(bandIndex, async () => {
      const exists = this.present.has(bandIndex);
      if (!exists && isAllZero(data)) return;
      const lease = exists ? await this.leaseForChange(bandIndex) : undefined;
      const size = this.#chunkBytes;
      const fileChunks = Math.floor((lease?.entry.sizeBytes ?? 0) / size);
      const { firstChunk, plain } = await this.#overlay(lease, offsetInBand, data);
      // Never extend a band with chunks of zeros: stop after the last non-zero chunk, or at the
      // current end of file when the write overlaps existing chunks.
      const lastChunk = firstChunk + plain.length / size;
      const writeEndChunk = Math.max(firstChunk + lastNonZeroChunk(plain, size) + 1, Math.min(lastChunk, fileChunks));
      if (writeEndChunk <= firstChunk) {
        if (lease !== undefined) await this.pool.release(lease);
        return;
      }
      const recording = this.notifyChange(bandIndex);
      if (recording !== undefined) await recording;
      if (this.options.mapped !== undefined) await this.options.mapped.markWritten(bandIndex, offsetInBand, data.length);
      const target = lease ?? (await this.createBand(bandIndex));
      const createdEmpty = lease === undefined && target.entry.sizeBytes === 0;
      try {
        await this.#writeZeroChunks(target, fileChunks, firstChunk);
        await this.#encryptAndWrite(target, firstChunk, plain.subarray(0, (writeEndChunk - firstChunk) * size));
        target.entry.sizeBytes = Math.max(target.entry.sizeBytes, writeEndChunk * size);
        this.dirtyBands.add(bandIndex);
        if (durable) await this.syncBand(target);
      } catch (error) {
        if (createdEmpty && target.entry.sizeBytes === 0) await this.discardCreatedBand(bandIndex, target);
        throw error;
      } finally {
        const closing = this.pool.release(target);
        if (closing !== undefined) await closing;
      }
    });
  }

  /** Makes [offsetInBand, +length) read as zeros: deletes, truncates, or writes encrypted zeros. */
  override async zero(bandIndex: number, offsetInBand: number, length: number, bandLengthBytes: number): Promise<void> {
    await this.withBandLock(bandIndex, async () => {
      if (!this.present.has(bandIndex)) return;
      const fileSize = await this.fileSize(bandIndex);
      if (fileSize === undefined || offsetInBand >= fileSize) return;
      const reachesEnd = offsetInBand + length >= Math.min(fileSize, bandLengthBytes);
      if (!reachesEnd && (await this.rangeIsZero(bandIndex, offsetInBand, length))) return;
      await this.notifyChange(bandIndex);
      if (offsetInBand === 0 && reachesEnd) {
        await this.deleteBand(bandIndex);
        return;
      }
      const lease = await this.leaseForChange(bandIndex);
      if (lease === undefined) return;
      try {
        const size = this.#chunkBytes;
        const end = reachesEnd ? Math.min(fileSize, Math.ceil(offsetInBand / size) * size) : offsetInBand + length;
        for (let position = offsetInBand; position < end; position += ZERO_PIECE_BYTES) {
          const piece = Buffer.alloc(Math.min(ZERO_PIECE_BYTES, end - position));
          const { firstChunk, plain } = await this.#overlay(lease, position, piece);
          await this.#encryptAndWrite(lease, firstChunk, plain);
        }
        if (reachesEnd) {
          const keptBytes = Math.ceil(offsetInBand / size) * size;
          await lease.entry.handle.truncate(keptBytes);
          lease.entry.sizeBytes = keptBytes;
        }
        this.dirtyBands.add(bandIndex);
      } finally {
        await this.pool.release(lease);
      }
    });
  }

  /**
   * The whole chunks under [offsetInBand, +data.length) as plaintext with `data` laid over them:
   * edge chunks that exist are read and decrypted first (partial-chunk writes keep their neighbours).
   */
  async #overlay(lease: BandLease | undefined, offsetInBand: number, data: Uint8Array): Promise<{ firstChunk: number; plain: Buffer }> {
    const size = this.#chunkBytes;
    const firstChunk = Math.floor(offsetInBand / size);
    const endChunk = Math.ceil((offsetInBand + data.length) / size);
    const plain = Buffer.alloc((endChunk - firstChunk) * size);
    if (lease !== undefined) {
      if (offsetInBand % size !== 0) await this.#readPlain(lease, firstChunk * size, plain.subarray(0, size));
      if ((offsetInBand + data.length) % size !== 0 && (endChunk - 1 > firstChunk || offsetInBand % size === 0))
        await this.#readPlain(lease, (endChunk - 1) * size, plain.subarray(plain.length - size));
    }
    plain.set(data, offsetInBand - firstChunk * size);
    return { firstChunk, plain };
  }

  /** Plaintext of [offsetInBand, +target.length); bytes past the end of the file read as zeros. */
  async #readPlain(lease: BandLease, offsetInBand: number, target: Uint8Array): Promise<void> {
    const size = this.#chunkBytes;
    const fileSize = lease.entry.sizeBytes;
    const firstChunk = Math.floor(offsetInBand / size);
    const end = offsetInBand + target.length;
    const wholeChunks = Math.floor(fileSize / size);
    if (fileSize % size !== 0 && end > wholeChunks * size) {
      throw new SbmError(
        'SBM_CORRUPT',
        `band ${bandFileName(lease.bandIndex)} is ${fileSize} bytes, not a whole number of ${size}-byte encrypted chunks`,
        { bandIndex: lease.bandIndex },
      );
    }
    const endChunk = Math.min(Math.ceil(end / size), wholeChunks);
    if (endChunk <= firstChunk) {
      target.fill(0);
      return;
    }
    const cipherText = Buffer.allocUnsafe((endChunk - firstChunk) * size);
    await readFullyFd(lease.entry.handle.fd, cipherText, firstChunk * size);
    const plain = Buffer.allocUnsafe(cipherText.length);
    this.#cipher.decryptChunks(cipherText, firstChunk, plain);
    const from = offsetInBand - firstChunk * size;
    const copied = plain.copy(target, 0, from, Math.min(plain.length, from + target.length));
    if (copied < target.length) target.fill(0, copied);
  }

  async #encryptAndWrite(lease: BandLease, firstChunk: number, plain: Uint8Array): Promise<void> {
    if (plain.length === 0) return;
    await writeFullyFd(lease.entry.handle.fd, this.#cipher.encryptChunks(plain, firstChunk), firstChunk * this.#chunkBytes);
  }

  /** Fills chunks [fromChunk, toChunk) with encrypted zeros (the gap a write past the end leaves). */
  async #writeZeroChunks(lease: BandLease, fromChunk: number, toChunk: number): Promise<void> {
    const perPiece = ZERO_PIECE_BYTES / this.#chunkBytes;
    for (let chunk = fromChunk; chunk < toChunk; chunk += perPiece) {
      const count = Math.min(perPiece, toChunk - chunk);
      await this.#encryptAndWrite(lease, chunk, Buffer.alloc(count * this.#chunkBytes));
    }
  }
}

/** Index (in chunks) of the last chunk holding a non-zero byte, or -1 when all are zero. */
function lastNonZeroChunk(plain: Buffer, chunkBytes: number): number {
  for (let chunk = plain.length / chunkBytes - 1; chunk >= 0; chunk--) {
    if (!isAllZero(plain.subarray(chunk * chunkBytes, (chunk + 1) * chunkBytes))) return chunk;
  }
  return -1;
}
