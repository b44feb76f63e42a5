// FLAT and VMFS extents (monolithicFlat, twoGbMaxExtentFlat, ESXi -flat.vmdk): raw bytes of a file
// starting at a sector offset; ZERO extents have no file and read as zeros. Holes of a sparse flat
// file are reported as holes (SEEK_DATA), so converting a thin flat disk skips them.

import type { FileHandle } from 'node:fs/promises';
import { SbmError } from '../../lib/errors.js';
import { allocatedRuns } from '../../lib/fs/sparse-seek.js';
import { SECTOR_SIZE } from './constants.js';
import { type Fallback, type Segment, type VmdkExtent, pushSegment, readExact } from './vmdk-extent.js';

export class FlatExtent implements VmdkExtent {
  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    readonly sizeBytes: number,
    private readonly fileOffset: number,
    private readonly type: string,
  ) {}

  /** Takes ownership of `handle`; fails if the file is shorter than the extent. */
  static async open(handle: FileHandle, path: string, sizeBytes: number, offsetSectors: number, type: string): Promise<FlatExtent> {
    const fileOffset = offsetSectors * SECTOR_SIZE;
    const { size } = await handle.stat();
    if (size < fileOffset + sizeBytes) {
      throw new SbmError('SBM_CORRUPT', `${path} is truncated: ${type} extent needs ${fileOffset + sizeBytes} bytes, file has ${size}`, {
        path,
        fileSize: size,
      });
    }
    return new FlatExtent(handle, path, sizeBytes, fileOffset, type);
  }

  async segments(offset: number, length: number): Promise<Segment[]> {
    const list: Segment[] = [];
    let position = offset;
    const end = offset + length;
    for (const run of allocatedRuns(this.handle.fd, this.fileOffset + offset, this.fileOffset + end)) {
      const runStart = run.offset - this.fileOffset;
      pushSegment(list, { offset: position, length: runStart - position, kind: 'hole' });
      pushSegment(list, { offset: runStart, length: run.length, kind: 'data' });
      position = runStart + run.length;
    }
    pushSegment(list, { offset: position, length: end - position, kind: 'hole' });
    return list;
  }

  async read(offset: number, target: Uint8Array, _fallback: Fallback): Promise<void> {
    await readExact(this.handle, target, this.fileOffset + offset, this.path);
  }

  allocatedBytes(): number {
    return allocatedRuns(this.handle.fd, this.fileOffset, this.fileOffset + this.sizeBytes).reduce((sum, run) => sum + run.length, 0);
  }

  describe(): Record<string, unknown> {
    return { file: this.path, type: this.type, size: this.sizeBytes, offset: this.fileOffset };
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined); // idempotent: a second close is harmless
  }
}

/** A ZERO extent: no file, reads as zeros. */
export class ZeroExtent implements VmdkExtent {
  constructor(readonly sizeBytes: number) {}

  async segments(offset: number, length: number): Promise<Segment[]> {
    return [{ offset, length, kind: 'hole' }];
  }

  async read(_offset: number, target: Uint8Array): Promise<void> {
    target.fill(0);
  }

  allocatedBytes(): number {
    return 0;
  }

  describe(): Record<string, unknown> {
    return { type: 'ZERO', size: this.sizeBytes };
  }

  async close(): Promise<void> {}
}
