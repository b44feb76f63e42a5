// Adjacent small requests that arrive together, run as one device call. A client stepping through
// the disk with 4 KiB requests at queue depth 16 (qemu-img bench, a guest's sequential I/O without
// readahead) sends runs of contiguous READs or WRITEs in one socket read; each device call costs
// far more than its 4 KiB (a promise chain, a lock, a pread or a thread-pool trip), so a run of
// n costs one call plus n small copies. Replies stay one per request, as the protocol requires.
//
// Only READs, or WRITEs with the same FUA flag, join a batch; anything else starts the batch first,
// so requests of different kinds still start in the order received (a FLUSH sees every WRITE
// received before it already started). Within a batch, contiguous requests become one call. If the merged call fails, each
// request is retried alone, so every request gets its own answer (writes are idempotent: the
// retry writes the same bytes to the same place).

import type { BlockDevice } from '../block-device.js';
import { SbmError } from '../errors.js';
import * as C from './constants.js';
import { readReply, simpleReply } from './nbd-replies.js';
import { type FrameAllocator, runRequest } from './nbd-request-runner.js';
import type { NbdRequest } from './nbd-server-protocol.js';

/** Whether `request` may start or join a batch at all. */
export function canBatch(request: NbdRequest): boolean {
  return (
    (request.type === C.NBD_CMD_READ || request.type === C.NBD_CMD_WRITE) &&
    request.length > 0 &&
    request.length <= C.SBM_COALESCE_MAX_REQUEST_BYTES
  );
}

/**
 * Consecutive groupable requests of one kind (READs, or WRITEs with one FUA flag) parsed in one
 * pass, in arrival order. Clients answer a burst of replies with a burst of requests in any order
 * (qemu's completions wake newest first, so its next 16 requests arrive in descending order), so
 * the batch is split into contiguous runs by offset, not by arrival.
 */
export class RequestBatch {
  readonly requests: NbdRequest[];
  private bytes: number;

  constructor(first: NbdRequest) {
    this.requests = [first];
    this.bytes = first.length;
  }

  /** Adds `request` if it is of the same kind and the batch has room; false leaves it unchanged. */
  tryAdd(request: NbdRequest): boolean {
    const first = this.requests[0] as NbdRequest;
    if (!canBatch(request) || request.type !== first.type) return false;
    if (request.type === C.NBD_CMD_WRITE && (request.flags & C.NBD_CMD_FLAG_FUA) !== (first.flags & C.NBD_CMD_FLAG_FUA)) return false;
    if (this.bytes + request.length > C.SBM_COALESCE_MAX_BATCH_BYTES) return false;
    this.requests.push(request);
    this.bytes += request.length;
    return true;
  }

  /**
   * The batch as runs to start in order: each run is contiguous, ascending and at most
   * SBM_COALESCE_MAX_BYTES. WRITEs that overlap keep their arrival order, one per run (the
   * protocol leaves overlapping in-flight writes unordered, but nothing is gained by reordering).
   */
  runs(): NbdRequest[][] {
    if (this.requests.length === 1) return [this.requests];
    const sorted = [...this.requests].sort((a, b) => a.offset - b.offset);
    const runs: NbdRequest[][] = [];
    let run: NbdRequest[] = [];
    let end = -1;
    let bytes = 0;
    for (const request of sorted) {
      if (request.offset < end && request.type === C.NBD_CMD_WRITE) return this.requests.map((one) => [one]);
      if (request.offset !== end || bytes + request.length > C.SBM_COALESCE_MAX_BYTES) {
        if (run.length > 0) runs.push(run);
        run = [];
        bytes = 0;
      }
      run.push(request);
      end = request.offset + request.length;
      bytes += request.length;
    }
    runs.push(run);
    return runs;
  }
}

/**
 * Runs one contiguous run (two or more requests) as one device call and returns one reply frame
 * per request, in order. Never rejects: if the merged call fails, each request runs alone.
 */
export async function runMerged(device: BlockDevice, requests: readonly NbdRequest[], frames: FrameAllocator): Promise<Buffer[]> {
  let total = 0;
  for (const request of requests) total += request.length;
  const merged = frames.acquire(total);
  try {
    return await mergedCall(device, requests, merged, frames);
  } catch {
    return await Promise.all(requests.map((request) => runRequest(device, request, frames)));
  } finally {
    frames.release(merged);
  }
}

async function mergedCall(device: BlockDevice, requests: readonly NbdRequest[], merged: Buffer, frames: FrameAllocator): Promise<Buffer[]> {
  const first = requests[0] as NbdRequest;
  if (first.type === C.NBD_CMD_READ) {
    await device.readInto(first.offset, merged);
    return requests.map((request) => {
      const reply = readReply(request.cookie, request.offset, request.length, request.structured, (size) => frames.acquire(size));
      const from = request.offset - first.offset;
      merged.copy(reply.data, 0, from, from + request.length);
      return reply.frame;
    });
  }
  let at = 0;
  for (const request of requests) {
    if (request.data === undefined || request.data.length !== request.length)
      throw new SbmError(
        'SBM_INTERNAL',
        `merged WRITE at ${request.offset}: payload of ${request.data?.length ?? 0} bytes, expected ${request.length}`,
      );
    request.data.copy(merged, at);
    at += request.length;
  }
  await device.write(first.offset, merged, { fua: (first.flags & C.NBD_CMD_FLAG_FUA) !== 0 });
  return requests.map((request) => simpleReply(request.cookie, 0));
}
