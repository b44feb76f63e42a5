// What one extent of a VMDK link provides to the link that lays extents end to end. Offsets are
// extent-relative bytes. `absent` means "not in this link": the read falls through to the parent
// (or reads zeros at the base); `hole` and `zero` read as zeros and stop there.

import { SbmError, fromSystemError } from '../../lib/errors.js';

export type SegmentKind = 'data' | 'zero' | 'hole' | 'absent';

export interface Segment {
  readonly offset: number;
  readonly length: number;
  readonly kind: SegmentKind;
}

/** Reads `target.length` bytes at extent-relative `offset` of the parent link (or zeros). */
export type Fallback = (offset: number, target: Uint8Array) => Promise<void>;

export interface VmdkExtent {
  readonly sizeBytes: number;
  /** Covers [offset, offset+length) with merged runs. */
  segments(offset: number, length: number): Promise<Segment[]>;
  read(offset: number, target: Uint8Array, fallback: Fallback): Promise<void>;
  /** Bytes of virtual space this extent stores (data and zeroed grains). */
  allocatedBytes(): number;
  /** For `sbm info`: file, type, size, offset, ... */
  describe(): Record<string, unknown>;
  close(): Promise<void>;
}

export function pushSegment(list: Segment[], segment: Segment): void {
  if (segment.length === 0) return;
  const last = list[list.length - 1];
  if (last !== undefined && last.kind === segment.kind && last.offset + last.length === segment.offset) {
    list[list.length - 1] = { offset: last.offset, length: last.length + segment.length, kind: last.kind };
  } else {
    list.push(segment);
  }
}

/** `length` bytes of the file at `path` from `fileOffset`: one piece of an extent stored inside another file. */
export interface FileSegment {
  readonly fileOffset: number;
  readonly length: number;
}

/**
 * What a sparse extent reads from: an open file (a FileHandle is one), or pieces of a bigger file
 * such as a VMDK stored in an OVA's tar, possibly chunked (positions then run through `segments`
 * of the file at `path` in order, which the inflate workers open and read themselves).
 */
export interface ExtentHandle {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  readv(buffers: readonly Uint8Array[], position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
  /** The pieces of the underlying file, in order (undefined: the whole file, position = file offset). */
  readonly segments?: readonly FileSegment[];
}

/** Reads exactly target.length bytes at `position`; end of file is SBM_CORRUPT (never zero-filled). */
export async function readExact(handle: ExtentHandle, target: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(target, done, target.length - done, position + done));
    } catch (error) {
      throw fromSystemError(error, 'cannot read VMDK extent', path);
    }
    if (bytesRead === 0) {
      throw new SbmError('SBM_CORRUPT', `${path} is truncated: reading ${target.length} bytes at ${position} hit end of file`, {
        path,
        position,
      });
    }
    done += bytesRead;
  }
}

/** readExact for a file range scattered over several buffers (one readv per attempt). */
export async function readvExact(handle: ExtentHandle, targets: readonly Uint8Array[], position: number, path: string): Promise<void> {
  let buffers = targets.filter((target) => target.length > 0);
  const total = buffers.reduce((sum, target) => sum + target.length, 0);
  let done = 0;
  while (buffers.length > 0) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.readv(buffers, position + done));
    } catch (error) {
      throw fromSystemError(error, 'cannot read VMDK extent', path);
    }
    if (bytesRead === 0) {
      throw new SbmError('SBM_CORRUPT', `${path} is truncated: reading ${total} bytes at ${position} hit end of file`, { path, position });
    }
    done += bytesRead;
    // A short read: drop the buffers it filled and continue in the one it stopped in.
    let skip = bytesRead;
    while (buffers.length > 0 && skip >= (buffers[0]?.length ?? 0)) skip -= buffers.shift()?.length ?? 0;
    const partial = buffers[0];
    if (partial !== undefined && skip > 0) buffers = [partial.subarray(skip), ...buffers.slice(1)];
  }
}
