// macOS "written blocks" bitmaps in mapped/: one file per band, one bit per 4 KiB block, least
// significant bit first. sbm keeps them only when macOS created mapped/, sets the bit of every
// block a write touches, and never clears a bit (an extra bit is harmless; a missing one could
// make macOS read zeros). Bitmaps are made durable no later than the band data (flush order).

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { SbmError } from '../errors.js';
import { isNotRegularFile, openRegular } from '../fs/safe-open.js';
import { join } from 'node:path';
import { MAPPED_BLOCK_BYTES } from '../bundle/constants.js';
import { bandFileName } from '../bundle/bundle-paths.js';
import { readFully, writeFully } from '../fs/read-fully.js';

const MAX_CACHED_BITMAPS = 4096;

export class MappedBitmaps {
  private readonly cache = new Map<number, Buffer>();
  private readonly dirty = new Set<number>();
  private createdFiles = false;

  constructor(
    private readonly directory: string,
    private readonly bandSizeBytes: number,
  ) {}

  get bitmapBytes(): number {
    return Math.ceil(this.bandSizeBytes / MAPPED_BLOCK_BYTES / 8);
  }

  /** Sets the bits for [offsetInBand, offsetInBand+length) of a band and writes the bitmap file. */
  async markWritten(bandIndex: number, offsetInBand: number, length: number): Promise<void> {
    if (length === 0) return;
    const bitmap = await this.load(bandIndex);
    const firstBlock = Math.floor(offsetInBand / MAPPED_BLOCK_BYTES);
    const lastBlock = Math.floor((offsetInBand + length - 1) / MAPPED_BLOCK_BYTES);
    let changed = false;
    for (let block = firstBlock; block <= lastBlock; block++) {
      const byteIndex = block >> 3;
      const mask = 1 << (block & 7);
      const current = bitmap[byteIndex] ?? 0;
      if ((current & mask) === 0) {
        bitmap[byteIndex] = current | mask;
        changed = true;
      }
    }
    if (!changed) return;
    const handle = await this.openBitmap(bandIndex, constants.O_RDWR);
    try {
      await writeFully(handle, bitmap, 0);
    } finally {
      await handle.close();
    }
    this.dirty.add(bandIndex);
  }

  /** fsyncs every bitmap written since the last flush (and mapped/ when files were created). */
  async flush(): Promise<void> {
    const bands = [...this.dirty];
    this.dirty.clear();
    for (const bandIndex of bands) {
      const handle = await this.openBitmap(bandIndex, constants.O_RDONLY);
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
    }
    if (this.createdFiles) {
      this.createdFiles = false;
      const dir = await open(this.directory, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
  }

  /** Never through a symlink or into a FIFO: bitmaps are written, and must stay inside the bundle. */
  private async openBitmap(bandIndex: number, flags: number): Promise<FileHandle> {
    const path = this.pathOf(bandIndex);
    try {
      return (await openRegular(path, flags)).handle;
    } catch (error) {
      if (!isNotRegularFile(error)) throw error;
      throw new SbmError('SBM_CORRUPT', `${path} is a ${error.kind}, not a regular file; sbm will not write the bitmap through it`, {
        path,
        kind: error.kind,
      });
    }
  }

  private pathOf(bandIndex: number): string {
    return join(this.directory, bandFileName(bandIndex));
  }

  private async load(bandIndex: number): Promise<Buffer> {
    const cached = this.cache.get(bandIndex);
    if (cached !== undefined) return cached;
    const bitmap = Buffer.alloc(this.bitmapBytes);
    // 'a+' creates a missing bitmap without truncating an existing one.
    const handle = await this.openBitmap(bandIndex, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT);
    try {
      const stat = await handle.stat();
      if (stat.size === 0) {
        this.createdFiles = true;
      } else {
        // Keep every bit macOS set, even past our computed size.
        await readFully(handle, bitmap, 0);
      }
    } finally {
      await handle.close();
    }
    if (this.cache.size >= MAX_CACHED_BITMAPS) {
      for (const key of this.cache.keys()) {
        if (!this.dirty.has(key)) {
          this.cache.delete(key);
          break;
        }
      }
    }
    this.cache.set(bandIndex, bitmap);
    return bitmap;
  }
}
