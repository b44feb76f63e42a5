// The open file behind one Parallels layer (.hds or plain): exact positional reads that never
// zero-fill past the end (a truncated image is damage, reported naming the file).

import { type FileHandle, open } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';

export class LayerFile {
  private constructor(
    readonly path: string,
    readonly handle: FileHandle,
    readonly sizeBytes: number,
  ) {}

  static async open(path: string): Promise<LayerFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      throw fromSystemError(error, 'cannot open Parallels image', path);
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new SbmError('SBM_UNSUPPORTED', `${path} is not a regular file`, { path });
      return new LayerFile(path, handle, info.size);
    } catch (error) {
      await handle.close();
      throw error instanceof SbmError ? error : fromSystemError(error, 'cannot open Parallels image', path);
    }
  }

  /** Fills `target` from `position`; SBM_CORRUPT when the file ends first. */
  async readExact(target: Uint8Array, position: number, what: string): Promise<void> {
    if (position + target.length > this.sizeBytes) throw this.pastEnd(what, position);
    let got: number;
    try {
      got = await readFully(this.handle, target, position);
    } catch (error) {
      throw fromSystemError(error, `cannot read ${what}`, this.path);
    }
    if (got < target.length) throw this.pastEnd(what, position);
  }

  corrupt(why: string, data: Record<string, unknown> = {}): SbmError {
    return new SbmError('SBM_CORRUPT', `${this.path}: ${why}`, { path: this.path, ...data });
  }

  unsupported(why: string, data: Record<string, unknown> = {}): SbmError {
    return new SbmError('SBM_UNSUPPORTED', `${this.path}: ${why}`, { path: this.path, ...data });
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined); // idempotent: a second close is harmless
  }

  private pastEnd(what: string, position: number): SbmError {
    return this.corrupt(`${what} at offset ${position} lies past the end of the file (${this.sizeBytes} bytes): truncated`, {
      offset: position,
    });
  }
}
