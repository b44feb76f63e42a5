// The open file behind one VHD: exact positional reads that never zero-fill past the end (a
// truncated image is damage, reported naming the file).

import type { FileHandle } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';

export class VhdFile {
  constructor(
    readonly path: string,
    readonly handle: FileHandle,
    readonly sizeBytes: number,
  ) {}

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

  async read(length: number, position: number, what: string): Promise<Buffer> {
    const out = Buffer.alloc(length);
    await this.readExact(out, position, what);
    return out;
  }

  corrupt(why: string, data: Record<string, unknown> = {}): SbmError {
    return new SbmError('SBM_CORRUPT', `${this.path}: ${why}`, { path: this.path, ...data });
  }

  unsupported(why: string, data: Record<string, unknown> = {}): SbmError {
    return new SbmError('SBM_UNSUPPORTED', `${this.path}: ${why}`, { path: this.path, ...data });
  }

  private pastEnd(what: string, position: number): SbmError {
    return this.corrupt(`${what} at offset ${position} lies past the end of the file (${this.sizeBytes} bytes): truncated`, {
      offset: position,
    });
  }
}
