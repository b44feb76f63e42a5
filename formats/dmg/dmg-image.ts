// A UDIF image as a read-only BlockDevice. Chunks are found by binary search; each is read and
// decompressed whole (at most MAX_CHUNK_BYTES, 1 MiB from hdiutil) into a small cache, so memory
// stays bounded however large the disk, and each blkx checksum is checked as its chunks are first
// decoded (dmg-checksums.ts). Zero and ignore chunks, and sectors no chunk
// maps, read as zeros and are reported as holes.

import type { FileHandle } from 'node:fs/promises';
import { inflateSync } from 'node:zlib';
import Bunzip from 'seek-bzip';
import { type Extent, checkRange, pushExtent } from '../../lib/block-device.js';
import { crc32Bulk } from '../../lib/checksums.js';
import { SbmError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';
import type { ImageReader } from '../image-format.js';
import { decodeAdc } from './adc.js';
import { BlkxChecksums } from './dmg-checksums.js';
import type { DmgChunk, DmgTables } from './dmg-tables.js';
import { CHECKSUM_CRC32, CHUNK, DMG_SECTOR_SIZE } from './layouts.js';
import { decodeXzChunk } from './xz-chunk.js';

const CACHE_ENTRIES = 8;
/** Read size of the data-fork pass in verify(). */
const VERIFY_PIECE = 1024 * 1024;

const hex = (value: number): string => value.toString(16).padStart(8, '0');
const checksumName = (type: number): string => (type === CHECKSUM_CRC32 ? 'crc32' : type === 0 ? 'none' : `type ${type}`);

export class DmgImage implements ImageReader {
  readonly formatName = 'dmg';
  readonly readOnly = true;
  readonly preferredBlockSize = 1024 * 1024;
  readonly minimumBlockSize = DMG_SECTOR_SIZE;
  readonly sizeBytes: number;
  private closed = false;
  // Insertion-ordered: the first key is the least recently used.
  private readonly cache = new Map<DmgChunk, Buffer>();
  private readonly checksums: BlkxChecksums;

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly tables: DmgTables,
  ) {
    this.sizeBytes = tables.sizeBytes;
    this.checksums = new BlkxChecksums(path, tables.partitions);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, target.length);
    await this.walk(offset, target.length, async (position, length, chunk) => {
      const view = target.subarray(position - offset, position - offset + length);
      if (chunk === undefined || chunk.type === CHUNK.zero || chunk.type === CHUNK.ignore) view.fill(0);
      else {
        const data = await this.decoded(chunk);
        view.set(data.subarray(position - chunk.offset, position - chunk.offset + length));
      }
    });
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, length);
    const list: Extent[] = [];
    await this.walk(offset, length, async (position, runLength, chunk) => {
      const hole = chunk === undefined || chunk.type === CHUNK.zero || chunk.type === CHUNK.ignore;
      pushExtent(list, { offset: position, length: runLength, kind: hole ? 'hole' : 'data' });
    });
    return list;
  }

  /** Visits [offset, offset+length) as runs, each inside one chunk or one unmapped gap. */
  private async walk(
    offset: number,
    length: number,
    visit: (position: number, length: number, chunk: DmgChunk | undefined) => Promise<void>,
  ): Promise<void> {
    const chunks = this.tables.chunks;
    const end = offset + length;
    let index = this.firstChunkEndingAfter(offset);
    let position = offset;
    while (position < end) {
      const chunk = chunks[index];
      if (chunk === undefined || chunk.offset >= end) {
        await visit(position, end - position, undefined);
        return;
      }
      if (chunk.offset > position) {
        await visit(position, chunk.offset - position, undefined);
        position = chunk.offset;
      }
      const take = Math.min(end, chunk.offset + chunk.length) - position;
      await visit(position, take, chunk);
      position += take;
      index++;
    }
  }

  private firstChunkEndingAfter(offset: number): number {
    const chunks = this.tables.chunks;
    let low = 0;
    let high = chunks.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const chunk = chunks[middle] as DmgChunk;
      if (chunk.offset + chunk.length <= offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private async decoded(chunk: DmgChunk): Promise<Buffer> {
    this.checksums.check(chunk);
    const cached = this.cache.get(chunk);
    if (cached !== undefined) {
      this.cache.delete(chunk);
      this.cache.set(chunk, cached);
      return cached;
    }
    const packed = Buffer.allocUnsafe(chunk.fileLength);
    await this.readFile(packed, chunk.fileOffset);
    let data: Buffer;
    if (chunk.type === CHUNK.raw) data = packed;
    else if (chunk.type === CHUNK.lzma)
      data = await decodeXzChunk(packed, chunk.length, `${this.path} (chunk at disk offset ${chunk.offset})`, this.path);
    else data = this.decompress(chunk, packed);
    this.checksums.record(chunk, data);
    this.cache.set(chunk, data);
    if (this.cache.size > CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value as DmgChunk);
    return data;
  }

  private decompress(chunk: DmgChunk, packed: Buffer): Buffer {
    const where = `${this.path} (chunk at disk offset ${chunk.offset})`;
    if (chunk.type === CHUNK.adc) {
      const out = Buffer.alloc(chunk.length);
      decodeAdc(packed, out, where);
      return out;
    }
    const method = chunk.type === CHUNK.bzip2 ? 'bzip2' : 'zlib';
    let out: Buffer;
    try {
      out =
        chunk.type === CHUNK.bzip2
          ? Bunzip.decode(packed, Buffer.alloc(chunk.length))
          : inflateSync(packed, { maxOutputLength: chunk.length });
    } catch (error) {
      const reason = String(error instanceof Error ? error.message : error).split('\n')[0];
      throw new SbmError('SBM_CORRUPT', `${where}: ${method} data does not decompress (${reason})`, { path: this.path });
    }
    if (out.length !== chunk.length)
      throw new SbmError('SBM_CORRUPT', `${where}: ${method} chunk decompresses to ${out.length} bytes, expected ${chunk.length}`, {
        path: this.path,
      });
    return out;
  }

  private async readFile(target: Uint8Array, position: number): Promise<void> {
    const got = await readFully(this.handle, target, position);
    if (got < target.length)
      throw new SbmError('SBM_CORRUPT', `${this.path}: UDIF data ends early at file offset ${position + got}`, { path: this.path });
  }

  /**
   * Checks every checksum the image carries: the data fork's CRC-32 (one pass over the stored
   * bytes) and every blkx's (each chunk decoded). Throws SBM_CORRUPT at the first mismatch.
   */
  async verify(): Promise<Record<string, unknown>> {
    this.assertOpen();
    const { koly, chunks, partitions } = this.tables;
    let dataFork = 'none';
    if (koly.dataChecksumType === CHECKSUM_CRC32) {
      const piece = Buffer.allocUnsafe(Math.min(VERIFY_PIECE, koly.dataForkLength));
      let crc = 0;
      for (let done = 0; done < koly.dataForkLength; done += piece.length) {
        const view = piece.subarray(0, Math.min(piece.length, koly.dataForkLength - done));
        await this.readFile(view, koly.dataForkOffset + done);
        crc = crc32Bulk(view, crc);
      }
      const stored = koly.dataChecksum.readUInt32BE(0);
      if (crc !== stored)
        throw new SbmError(
          'SBM_CORRUPT',
          `${this.path}: UDIF data fork checksum does not match (stored ${hex(stored)}, read ${hex(crc)})`,
          {
            path: this.path,
          },
        );
      dataFork = 'crc32 ok';
    }
    for (const chunk of chunks) if (chunk.type !== CHUNK.zero && chunk.type !== CHUNK.ignore) await this.decoded(chunk);
    const withCrc = partitions.filter((part) => part.checksumType === CHECKSUM_CRC32).length;
    return { dataFork, blkxChecked: this.checksums.verified, blkxWithoutCrc32: partitions.length - withCrc };
  }

  async details(): Promise<Record<string, unknown>> {
    const { koly, partitions, chunkCounts } = this.tables;
    return {
      checksums: {
        master: checksumName(koly.checksumType),
        dataFork: checksumName(koly.dataChecksumType),
        blkx: [...new Set(partitions.map((part) => checksumName(part.checksumType)))].join(', '),
      },
      version: koly.version,
      imageVariant: koly.imageVariant,
      sectors: koly.sectorCount,
      dataForkBytes: koly.dataForkLength,
      chunkTypes: chunkCounts,
      partitions: partitions.map((part) => ({
        name: part.name,
        offset: part.firstSector * DMG_SECTOR_SIZE,
        bytes: part.sectorCount * DMG_SECTOR_SIZE,
      })),
    };
  }

  async write(): Promise<void> {
    throw this.readOnlyError();
  }

  async writeZeroes(): Promise<void> {
    throw this.readOnlyError();
  }

  async trim(): Promise<void> {
    throw this.readOnlyError();
  }

  async flush(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cache.clear();
    await this.handle.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private readOnlyError(): SbmError {
    return new SbmError('SBM_READ_ONLY', `UDIF image ${this.path} is read-only`, { path: this.path });
  }

  private assertOpen(): void {
    if (this.closed) throw new SbmError('SBM_CLOSED', `UDIF image ${this.path} is closed`, { path: this.path });
  }
}
