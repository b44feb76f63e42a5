// A file made of pieces of another file: a disk stored in an OVA's tar (one piece: the member's
// data) or split into chunks (`ovf:chunkSize`: one piece per chunk member, in order). Positions
// count from the start of the first piece; reads never cross into a neighbouring tar header.
// It is what the VMDK reader reads through (formats/vmdk ExtentHandle), so no byte is copied out
// of the package.

import type { FileHandle } from 'node:fs/promises';
import type { ExtentHandle, FileSegment } from '../vmdk/vmdk-extent.js';

export class SegmentedHandle implements ExtentHandle {
  readonly sizeBytes: number;

  constructor(
    private readonly handle: FileHandle,
    readonly segments: readonly FileSegment[],
  ) {
    this.sizeBytes = segments.reduce((sum, segment) => sum + segment.length, 0);
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    let done = 0;
    let segmentStart = 0;
    for (const segment of this.segments) {
      const at = position + done;
      const segmentEnd = segmentStart + segment.length;
      if (done < length && at >= segmentStart && at < segmentEnd) {
        const take = Math.min(length - done, segmentEnd - at);
        const { bytesRead } = await this.handle.read(buffer, offset + done, take, segment.fileOffset + (at - segmentStart));
        done += bytesRead;
        if (bytesRead < take) break;
      }
      segmentStart = segmentEnd;
    }
    return { bytesRead: done };
  }

  async readv(buffers: readonly Uint8Array[], position: number): Promise<{ bytesRead: number }> {
    let done = 0;
    for (const buffer of buffers) {
      const { bytesRead } = await this.read(buffer, 0, buffer.length, position + done);
      done += bytesRead;
      if (bytesRead < buffer.length) break;
    }
    return { bytesRead: done };
  }

  async stat(): Promise<{ size: number }> {
    return { size: this.sizeBytes };
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined); // idempotent: a second close is harmless
  }
}
