// A gzip-compressed streamOptimized VMDK inside an OVF package, as a disk. `sbm convert` copies it
// in one pass straight from the package (copyInOrder: gunzip -> vmdk/stream-copy.ts) and `sbm
// info` counts its grains the same way (details), with no temporary copy. Reads, which need
// random access (mount, compare, sync), open the staged reader instead (gzip-staging.ts), once,
// on first use.

import type { Readable } from 'node:stream';
import type { BlockDevice, Extent, WriteOptions } from '../../lib/block-device.js';
import type { CopiesItself, CopyOptions, CopyResult } from '../../lib/copy-device.js';
import { SbmError } from '../../lib/errors.js';
import { filesNamedIn } from '../../lib/fs/output-inside-input.js';
import type { ImageReader } from '../image-format.js';
import { SECTOR_SIZE } from '../vmdk/constants.js';
import { type StreamGeometry, type StreamReadOptions, copyVmdkStream, scanVmdkStream } from '../vmdk/stream-copy.js';
import { gunzipPieces, gzipFailure } from './gzip-staging.js';
import type { PackageFile } from './ova-package.js';

export interface GzipStreamSource {
  /** The package, for messages. */
  readonly where: string;
  /** The disk file's name in the package. */
  readonly name: string;
  readonly pieces: readonly PackageFile[];
  readonly geometry: StreamGeometry;
  /** The most the file may decompress to. */
  readonly limitBytes: number;
  /** The package facts `sbm info` shows (the staged reader adds the VMDK's own). */
  readonly facts: Record<string, unknown>;
}

export class GzipStreamDisk implements ImageReader, CopiesItself {
  readonly readOnly = true;
  readonly sizeBytes: number;
  readonly preferredBlockSize: number;
  readonly minimumBlockSize = SECTOR_SIZE;
  private staging: Promise<ImageReader> | undefined;
  private closed = false;

  constructor(
    readonly formatName: string,
    private readonly source: GzipStreamSource,
    private readonly stage: () => Promise<ImageReader>,
  ) {
    this.sizeBytes = source.geometry.capacityBytes;
    this.preferredBlockSize = source.geometry.grainBytes;
  }

  async copyInOrder(target: BlockDevice, options: CopyOptions): Promise<CopyResult> {
    return this.readThrough((stream, read) => copyVmdkStream(stream, target, { ...options, ...read }));
  }

  /** Runs `read` over the decompressed disk file; a failure is the error the user sees (gzipFailure). */
  private async readThrough<T>(read: (stream: Readable, options: StreamReadOptions) => Promise<T>): Promise<T> {
    const { where, name } = this.source;
    const stream = gunzipPieces(this.source.pieces);
    try {
      return await read(stream, { path: `${where}: ${name}`, limitBytes: this.source.limitBytes });
    } catch (error) {
      throw gzipFailure(error, where, name);
    } finally {
      stream.destroy();
    }
  }

  private staged(): Promise<ImageReader> {
    if (this.closed) throw new SbmError('SBM_CLOSED', `${this.source.where} is closed`);
    this.staging ??= this.stage();
    return this.staging;
  }

  async details(): Promise<Record<string, unknown>> {
    const summary = await this.readThrough(scanVmdkStream);
    return {
      ...this.source.facts,
      compression: `gzip (${summary.streamBytes} bytes decompressed, read as a stream)`,
      createType: 'streamOptimized',
      allocatedBytes: summary.allocatedBytes,
    };
  }

  /** The files the package facts name, without staging (convert's output-onto-input check). */
  namedFiles(): string[] {
    return filesNamedIn(this.source.facts);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return (await this.staged()).read(offset, length);
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    await (await this.staged()).readInto(offset, target);
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    return (await this.staged()).extents(offset, length);
  }

  write(_offset: number, _data: Uint8Array, _options?: WriteOptions): Promise<void> {
    return Promise.reject(this.readOnlyError());
  }

  writeZeroes(): Promise<void> {
    return Promise.reject(this.readOnlyError());
  }

  trim(): Promise<void> {
    return Promise.reject(this.readOnlyError());
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
    const staging = this.staging;
    this.staging = undefined;
    if (staging !== undefined) await (await staging.catch(() => undefined))?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private readOnlyError(): SbmError {
    return new SbmError('SBM_READ_ONLY', `${this.source.where}: a disk in an OVF package is read-only`, { path: this.source.where });
  }
}
