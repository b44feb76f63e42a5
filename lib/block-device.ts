// The contract every box of sbm speaks: a sparse bundle, a snapshot view, every format reader and
// the NBD server's backing store are all a BlockDevice. Copy, mount and backup are written once
// against this interface.
//
// Offsets and lengths are byte counts held in `number`: exact up to 2^53 (8 PiB), which is the
// largest disk sbm accepts (Apple's own limit, 2^57, is refused with SBM_BAD_SIZE above 2^53).

import { SbmError } from './errors.js';

export type ExtentKind = 'data' | 'zero' | 'hole';

/** A run of the virtual disk. `hole` = unallocated (reads as zeros), `zero` = allocated but known zero. */
export interface Extent {
  readonly offset: number;
  readonly length: number;
  readonly kind: ExtentKind;
}

export interface WriteOptions {
  /** Force unit access: the write is durable before the promise resolves. */
  readonly fua?: boolean;
}

export interface BlockDevice extends AsyncDisposable {
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** I/O size the device handles best (NBD "preferred block size"). */
  readonly preferredBlockSize: number;
  /** Smallest alignment the device supports without read-modify-write (NBD "minimum block size"). */
  readonly minimumBlockSize: number;

  /** Reads `length` bytes at `offset`; the whole range must lie inside the disk. */
  read(offset: number, length: number): Promise<Buffer>;
  /** Reads `target.length` bytes at `offset` into the caller's buffer. */
  readInto(offset: number, target: Uint8Array): Promise<void>;
  write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void>;
  /** Makes the range read as zeros; may deallocate. */
  writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void>;
  /** Discards the range. sbm devices always read a trimmed range back as zeros. */
  trim(offset: number, length: number): Promise<void>;
  /** Makes every acknowledged write durable. */
  flush(): Promise<void>;
  /** Covers [offset, offset+length) exactly with adjacent runs, merged where kinds match. */
  extents(offset: number, length: number): Promise<Extent[]>;
  /** Idempotent. */
  close(): Promise<void>;
}

/** Throws SBM_OUT_OF_RANGE unless [offset, offset+length) is a valid range of a disk of `sizeBytes`. */
export function checkRange(sizeBytes: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new SbmError('SBM_OUT_OF_RANGE', `invalid range offset=${offset} length=${length}`, { offset, length });
  }
  if (offset + length > sizeBytes) {
    throw new SbmError('SBM_OUT_OF_RANGE', `range ${offset}+${length} ends past the disk size ${sizeBytes}`, {
      offset,
      length,
      sizeBytes,
    });
  }
}

/** Appends an extent to a list, merging it into the previous one when they touch and share a kind. */
export function pushExtent(list: Extent[], extent: Extent): void {
  if (extent.length === 0) return;
  const last = list[list.length - 1];
  if (last !== undefined && last.kind === extent.kind && last.offset + last.length === extent.offset) {
    list[list.length - 1] = { offset: last.offset, length: last.length + extent.length, kind: last.kind };
  } else {
    list.push(extent);
  }
}

const ZERO_CHUNK = Buffer.alloc(64 * 1024);

/**
 * The maximal runs of `data` made of blocks that are not all zero, as [start, end) offsets into
 * `data`. Blocks are `blockBytes` long and aligned to the disk, where `data` starts at
 * `diskOffset`: a merged read splits where a lone read of the same range would.
 */
export function* nonZeroBlockRuns(data: Uint8Array, blockBytes: number, diskOffset = 0): Generator<{ start: number; end: number }> {
  let runStart = -1;
  for (let position = 0; position < data.length; ) {
    const end = Math.min(data.length, (Math.floor((diskOffset + position) / blockBytes) + 1) * blockBytes - diskOffset);
    if (!isAllZero(data.subarray(position, end))) {
      if (runStart < 0) runStart = position;
    } else if (runStart >= 0) {
      yield { start: runStart, end: position };
      runStart = -1;
    }
    position = end;
  }
  if (runStart >= 0) yield { start: runStart, end: data.length };
}

/** True when every byte of the view is zero (native memcmp against a shared zero chunk). */
export function isAllZero(data: Uint8Array): boolean {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let index = 0; index < view.length; index += ZERO_CHUNK.length) {
    const end = Math.min(index + ZERO_CHUNK.length, view.length);
    if (view.compare(ZERO_CHUNK, 0, end - index, index, end) !== 0) return false;
  }
  return true;
}
