// The open file behind one VHDX link: exact positional reads that never zero-fill past the end
// (a truncated image is damage, reported naming the file). Once a pending log is replayed
// (log-replay.ts), every read sees the replayed sectors, and the file is as long as the log
// says: past the bytes on disk up to that size it reads zeros, as if extended.

import type { FileHandle } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';
import type { LogOverlay } from './log-replay.js';

export class VhdxFile {
  private overlay: LogOverlay | undefined;

  constructor(
    readonly path: string,
    readonly handle: FileHandle,
    private readonly bytesOnDisk: number,
  ) {}

  /** The file's size: on disk, or once a log is replayed, as the log leaves it. */
  get sizeBytes(): number {
    return this.overlay?.fileSizeBytes ?? this.bytesOnDisk;
  }

  /** The log replayed into this file, if any. */
  get replayedLog(): LogOverlay | undefined {
    return this.overlay;
  }

  /** Every read from now on sees the replayed log. */
  useReplayedLog(overlay: LogOverlay): void {
    this.overlay = overlay;
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
    // readFully zero-fills past the bytes on disk: right only up to the size a replayed log gives.
    if (got < target.length && this.overlay === undefined) throw this.pastEnd(what, position);
    this.overlay?.apply(target, position);
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
