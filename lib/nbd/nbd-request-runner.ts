// Runs one validated request against a BlockDevice and returns its reply frame. Failures become
// error replies for that request only: the connection carries on.

import type { BlockDevice, Extent } from '../block-device.js';
import { isSbmError } from '../errors.js';
import * as C from './constants.js';
import { canZeroFast } from './fast-zero.js';
import { type BlockStatusDescriptor, blockStatusChunk, noneChunk, readReply, requestErrorReply, simpleReply } from './nbd-replies.js';
import { type NbdRequest, errorText } from './nbd-server-protocol.js';

/** Largest block status answer, so a 4 GiB query over a huge disk stays cheap. */
const MAX_STATUS_SPAN_BYTES = 4 * 1024 * 1024 * 1024;

/** Where READ reply frames come from (a BufferPool); the caller releases the returned frame once written. */
export interface FrameAllocator {
  acquire(length: number): Buffer;
  release(buffer: Buffer): void;
}
const plainFrames: FrameAllocator = { acquire: (length) => Buffer.allocUnsafe(length), release: () => undefined };

export async function runRequest(device: BlockDevice, request: NbdRequest, frames: FrameAllocator = plainFrames): Promise<Buffer> {
  try {
    return await execute(device, request, frames);
  } catch (error) {
    const code = nbdErrorOf(error);
    const message = error instanceof Error ? error.message : errorText(code);
    return requestErrorReply(request.cookie, code, request.structured, message);
  }
}

async function execute(device: BlockDevice, request: NbdRequest, frames: FrameAllocator): Promise<Buffer> {
  const { cookie, offset, length } = request;
  const fua = (request.flags & C.NBD_CMD_FLAG_FUA) !== 0;
  switch (request.type) {
    case C.NBD_CMD_READ: {
      const reply = readReply(cookie, offset, length, request.structured, (size) => frames.acquire(size));
      try {
        await device.readInto(offset, reply.data);
      } catch (error) {
        frames.release(reply.frame);
        throw error;
      }
      return reply.frame;
    }
    case C.NBD_CMD_WRITE:
      await device.write(offset, request.data ?? Buffer.alloc(0), { fua });
      return simpleReply(cookie, 0);
    case C.NBD_CMD_FLUSH:
      await device.flush();
      return simpleReply(cookie, 0);
    case C.NBD_CMD_TRIM:
      if (length > 0) await device.trim(offset, length);
      if (fua) await device.flush();
      return simpleReply(cookie, 0);
    case C.NBD_CMD_WRITE_ZEROES:
      if ((request.flags & C.NBD_CMD_FLAG_FAST_ZERO) !== 0 && !(await canZeroFast(device, offset, length))) {
        return requestErrorReply(cookie, C.NBD_ENOTSUP, false, '');
      }
      // NO_HOLE is advisory: a sparse bundle reads back zeros either way, which is all it promises.
      if (length > 0) await device.writeZeroes(offset, length, { fua });
      return simpleReply(cookie, 0);
    case C.NBD_CMD_CACHE:
      // Advisory prefetch; the range was checked, nothing else to do.
      return simpleReply(cookie, 0);
    case C.NBD_CMD_BLOCK_STATUS:
      return blockStatus(device, request);
    default:
      return requestErrorReply(cookie, C.NBD_EINVAL, request.structured, 'unknown command');
  }
}

async function blockStatus(device: BlockDevice, request: NbdRequest): Promise<Buffer> {
  const span = Math.min(request.length, MAX_STATUS_SPAN_BYTES);
  const extents = await device.extents(request.offset, span);
  const reqOne = (request.flags & C.NBD_CMD_FLAG_REQ_ONE) !== 0;
  const limit = reqOne ? 1 : C.SBM_MAX_EXTENTS_PER_REPLY;
  const descriptors: BlockStatusDescriptor[] = [];
  for (const extent of extents) {
    if (extent.length === 0) continue;
    const statusFlags = statusOf(extent);
    const last = descriptors[descriptors.length - 1];
    if (last !== undefined && last.statusFlags === statusFlags && last.length + extent.length <= 0xffffffff) {
      descriptors[descriptors.length - 1] = { length: last.length + extent.length, statusFlags };
      continue;
    }
    if (descriptors.length === limit) break;
    // Descriptor lengths are u32: split runs longer than that (only without REQ_ONE, which keeps one).
    let remaining = extent.length;
    while (remaining > 0 && descriptors.length < limit) {
      const piece = Math.min(remaining, 0x80000000);
      descriptors.push({ length: piece, statusFlags });
      remaining -= piece;
    }
  }
  if (descriptors.length === 0 || request.metaContextId === undefined) return noneChunk(request.cookie);
  return blockStatusChunk(request.cookie, request.metaContextId, descriptors);
}

function statusOf(extent: Extent): number {
  if (extent.kind === 'hole') return C.NBD_STATE_HOLE | C.NBD_STATE_ZERO;
  if (extent.kind === 'zero') return C.NBD_STATE_ZERO;
  return 0;
}

/** Maps a device failure to the NBD error value the client sees. */
export function nbdErrorOf(error: unknown): number {
  if (isSbmError(error, 'SBM_OUT_OF_RANGE') || isSbmError(error, 'SBM_INVALID_ARGUMENT')) return C.NBD_EINVAL;
  if (isSbmError(error, 'SBM_READ_ONLY')) return C.NBD_EPERM;
  if (isSbmError(error, 'SBM_CLOSED')) return C.NBD_ESHUTDOWN;
  // qemu pauses the guest on ENOSPC (werror=enospc) so space can be freed; on EIO it fails the I/O.
  if (isNoSpace(error)) return C.NBD_ENOSPC;
  return C.NBD_EIO;
}

const NO_SPACE_ERRNOS = new Set(['ENOSPC', 'EDQUOT']);

/**
 * Whether a failure is "no space left" (or quota exceeded): a raw errno, an SbmError carrying the
 * errno in data.errno or SBM_NO_SPACE, or any of these as a cause (the engine may wrap).
 */
function isNoSpace(error: unknown): boolean {
  let current = error;
  // A few levels are enough: wrappers add one or two; a cause cycle must not loop forever.
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    if (isSbmError(current, 'SBM_NO_SPACE')) return true;
    const { code, data, cause } = current as { code?: unknown; data?: { errno?: unknown }; cause?: unknown };
    if (typeof code === 'string' && NO_SPACE_ERRNOS.has(code)) return true;
    if (typeof data?.errno === 'string' && NO_SPACE_ERRNOS.has(data.errno)) return true;
    current = cause;
  }
  return false;
}
