// An in-memory BlockDevice: the oracle for model tests and a backing store for protocol tests.
// Holes are tracked per 4 KiB block so extents() has something honest to report.

import { type BlockDevice, type Extent, type WriteOptions, checkRange, isAllZero, pushExtent } from '../../lib/block-device.js';
import { SbmError } from '../../lib/errors.js';

const BLOCK = 4096;

export class MemoryDevice implements BlockDevice {
  readonly preferredBlockSize = BLOCK;
  readonly minimumBlockSize = 1;
  readonly bytes: Buffer;
  private readonly allocated: Uint8Array;
  private closed = false;

  constructor(
    readonly sizeBytes: number,
    readonly readOnly = false,
    initial?: Uint8Array,
  ) {
    this.bytes = Buffer.alloc(sizeBytes);
    this.allocated = new Uint8Array(Math.ceil(sizeBytes / BLOCK));
    if (initial !== undefined) {
      Buffer.from(initial.buffer, initial.byteOffset, initial.byteLength).copy(this.bytes);
      for (let block = 0; block < this.allocated.length; block++) {
        const slice = this.bytes.subarray(block * BLOCK, (block + 1) * BLOCK);
        this.allocated[block] = isAllZero(slice) ? 0 : 1;
      }
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, target.length);
    this.bytes.copy(target, 0, offset, offset + target.length);
  }

  async write(offset: number, data: Uint8Array, _options?: WriteOptions): Promise<void> {
    this.assertWritable();
    checkRange(this.sizeBytes, offset, data.length);
    this.bytes.set(data, offset);
    this.markBlocks(offset, data.length, 1);
  }

  async writeZeroes(offset: number, length: number, _options?: WriteOptions): Promise<void> {
    await this.trim(offset, length);
  }

  async trim(offset: number, length: number): Promise<void> {
    this.assertWritable();
    checkRange(this.sizeBytes, offset, length);
    this.bytes.fill(0, offset, offset + length);
    // Only whole blocks become holes; partial ones stay allocated (zero-filled), like a real disk.
    const firstWhole = Math.ceil(offset / BLOCK);
    const endWhole = Math.floor((offset + length) / BLOCK);
    for (let block = firstWhole; block < endWhole; block++) this.allocated[block] = 0;
  }

  async flush(): Promise<void> {
    this.assertOpen();
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, length);
    const list: Extent[] = [];
    let position = offset;
    const end = offset + length;
    while (position < end) {
      const block = Math.floor(position / BLOCK);
      const runEnd = Math.min(end, (block + 1) * BLOCK);
      pushExtent(list, { offset: position, length: runEnd - position, kind: this.allocated[block] ? 'data' : 'hole' });
      position = runEnd;
    }
    return list;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private markBlocks(offset: number, length: number, value: number): void {
    if (length === 0) return;
    const first = Math.floor(offset / BLOCK);
    const last = Math.floor((offset + length - 1) / BLOCK);
    for (let block = first; block <= last; block++) this.allocated[block] = value;
  }

  private assertOpen(): void {
    if (this.closed) throw new SbmError('SBM_CLOSED', 'memory device is closed');
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) throw new SbmError('SBM_READ_ONLY', 'memory device is read-only');
  }
}
