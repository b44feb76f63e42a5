// A raw disk image file as a BlockDevice: read-only for input, writable for export targets
// (created sparse: only written ranges allocate). Extents come from the file's own holes
// (SEEK_DATA/SEEK_HOLE), so a sparse raw image converts without reading its holes.

import { open, type FileHandle } from 'node:fs/promises';
import type { WriteOptions } from '../../lib/block-device.js';
import { type Extent, checkRange, pushExtent } from '../../lib/block-device.js';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { allocatedRuns } from '../../lib/fs/sparse-seek.js';
import { readFully, writeFully } from '../../lib/fs/read-fully.js';
import type { ImageReader } from '../image-format.js';

export class RawImage implements ImageReader {
  readonly formatName = 'raw';
  readonly preferredBlockSize = 64 * 1024;
  readonly minimumBlockSize = 1;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly sizeBytes: number,
    readonly readOnly: boolean,
  ) {}

  static async open(path: string): Promise<RawImage> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      throw fromSystemError(error, 'cannot open raw image', path);
    }
    const stat = await handle.stat();
    return new RawImage(path, handle, stat.size, true);
  }

  /** Creates a new sparse file of `sizeBytes` (fails if `path` exists). */
  static async create(path: string, sizeBytes: number): Promise<RawImage> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'wx+', 0o644);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new SbmError('SBM_EXISTS', `${path} already exists`, { path });
      throw fromSystemError(error, 'cannot create raw image', path);
    }
    await handle.truncate(sizeBytes);
    return new RawImage(path, handle, sizeBytes, false);
  }

  async details(): Promise<Record<string, unknown>> {
    const runs = allocatedRuns(this.handle.fd, 0, this.sizeBytes);
    return { allocatedBytes: runs.reduce((sum, run) => sum + run.length, 0) };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, target.length);
    await readFully(this.handle, target, offset);
  }

  async write(offset: number, data: Uint8Array, options: WriteOptions = {}): Promise<void> {
    this.assertWritable();
    checkRange(this.sizeBytes, offset, data.length);
    await writeFully(this.handle, data, offset);
    if (options.fua === true) await this.handle.datasync();
  }

  async writeZeroes(offset: number, length: number, options: WriteOptions = {}): Promise<void> {
    this.assertWritable();
    checkRange(this.sizeBytes, offset, length);
    const zeros = Buffer.alloc(Math.min(length, 1024 * 1024));
    for (let done = 0; done < length; done += zeros.length) {
      await writeFully(this.handle, zeros.subarray(0, Math.min(zeros.length, length - done)), offset + done);
    }
    if (options.fua === true) await this.handle.datasync();
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.writeZeroes(offset, length);
  }

  async flush(): Promise<void> {
    this.assertOpen();
    if (!this.readOnly) await this.handle.sync();
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, length);
    const end = offset + length;
    const list: Extent[] = [];
    let position = offset;
    for (const run of allocatedRuns(this.handle.fd, offset, end)) {
      pushExtent(list, { offset: position, length: run.offset - position, kind: 'hole' });
      pushExtent(list, { offset: run.offset, length: run.length, kind: 'data' });
      position = run.offset + run.length;
    }
    pushExtent(list, { offset: position, length: end - position, kind: 'hole' });
    return list;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) throw new SbmError('SBM_READ_ONLY', `raw image ${this.path} is opened read-only`);
  }

  private assertOpen(): void {
    if (this.closed) throw new SbmError('SBM_CLOSED', `raw image ${this.path} is closed`);
  }
}
