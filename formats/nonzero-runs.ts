// Walks a BlockDevice in disk order and yields the runs of it that hold non-zero bytes, for
// exporters that place data block by block (VDI, VHDX): holes and zero extents are never read,
// and data that turns out to be zeros (at `zeroBlockBytes` granularity, aligned to the disk) is
// dropped, so the exporter allocates nothing for it.
//
//   windows    [------ window k ------)[------ window k+1 ------)     (windowBytes, disk-aligned)
//   extents    |data|hole|data|..zero..|      data      |
//   spans read [=========]             [================]            (close extents merged, as copyDevice does)
//   runs       [==]   [=]              [====]   [=====]              (non-zero zero-blocks, maximal)
//
// Memory stays bounded by two windows whatever the disk size: window k+1 is read while the
// consumer writes the runs of window k. Windows without data are never visited, and extents are
// asked for a GiB at a time, so a huge, mostly empty disk walks quickly. A run's bytes are a view
// into a reused buffer, valid only until the consumer asks for the next run.

import { type BlockDevice, nonZeroBlockRuns } from '../lib/block-device.js';
import { type CopyOptions, chunkTasks } from '../lib/copy-device.js';

export interface NonZeroRun {
  readonly offset: number;
  /** The run's bytes; valid until the next run is requested. */
  readonly data: Buffer;
}

export interface RunWalkStats {
  bytesRead: number;
}

export interface RunWalkOptions {
  readonly windowBytes?: number;
  readonly zeroBlockBytes?: number;
  readonly copy?: CopyOptions;
  readonly stats?: RunWalkStats;
}

const DEFAULT_WINDOW_BYTES = 8 * 1024 * 1024;
const DEFAULT_ZERO_BLOCK_BYTES = 64 * 1024;
/** Extents are asked for this much of the disk at a time (as copyDevice does). */
const EXTENT_RANGE_BYTES = 1024 * 1024 * 1024;

interface Span {
  readonly offset: number;
  readonly length: number;
}

/** A window to read: its data spans, and how far the disk is done once its runs are written. */
interface WindowPlan {
  readonly start: number;
  readonly spans: readonly Span[];
  readonly doneThrough: number;
}

interface WindowRead extends WindowPlan {
  readonly buffer: Buffer;
}

/**
 * The windows that hold data, in order, from the extents of EXTENT_RANGE_BYTES at a time: a long
 * run of holes costs one extents call, not one per window. A range without data yields a plan
 * without spans, so progress still moves.
 */
async function* windowPlans(source: BlockDevice, windowBytes: number): AsyncGenerator<WindowPlan> {
  const total = source.sizeBytes;
  for (let rangeStart = 0; rangeStart < total; rangeStart += EXTENT_RANGE_BYTES) {
    const rangeEnd = Math.min(total, rangeStart + EXTENT_RANGE_BYTES);
    const tasks = chunkTasks(await source.extents(rangeStart, rangeEnd - rangeStart), windowBytes, total);
    if (tasks.length === 0) yield { start: rangeEnd, spans: [], doneThrough: rangeEnd };
    for (const [index, task] of tasks.entries()) {
      const doneThrough = index === tasks.length - 1 ? rangeEnd : task.chunkStart + task.chunkLength;
      yield { start: task.chunkStart, spans: task.spans, doneThrough };
    }
  }
}

export async function* nonZeroRuns(source: BlockDevice, options: RunWalkOptions = {}): AsyncGenerator<NonZeroRun> {
  const windowBytes = options.windowBytes ?? DEFAULT_WINDOW_BYTES;
  const zeroBlockBytes = options.zeroBlockBytes ?? DEFAULT_ZERO_BLOCK_BYTES;
  const total = source.sizeBytes;
  if (total === 0) return;
  // Shared memory, as in copyDevice: a reader that decodes in worker threads decodes straight into it.
  const buffers = [Buffer.from(new SharedArrayBuffer(windowBytes)), Buffer.from(new SharedArrayBuffer(windowBytes))];
  const plans = windowPlans(source, windowBytes);
  const readNext = async (buffer: Buffer): Promise<WindowRead | undefined> => {
    const next = await plans.next();
    if (next.done === true) return undefined;
    const plan = next.value;
    for (const span of plan.spans) {
      await source.readInto(span.offset, buffer.subarray(span.offset - plan.start, span.offset - plan.start + span.length));
      if (options.stats !== undefined) options.stats.bytesRead += span.length;
    }
    return { ...plan, buffer };
  };
  let pending = readNext(buffers[0] as Buffer);
  let index = 0;
  try {
    for (;;) {
      options.copy?.checkAborted?.();
      const window = await pending;
      if (window === undefined) break;
      index++;
      // Start the next read before handing out this window's runs (the other buffer is free).
      pending = readNext(buffers[index % 2] as Buffer);
      for (const span of window.spans) yield* runsOf(window, span, zeroBlockBytes);
      options.copy?.onProgress?.({ bytesDone: window.doneThrough, bytesTotal: total });
    }
  } finally {
    // A consumer that stops early (an error while writing) must not leave a read in flight.
    await pending.catch(() => undefined);
    await plans.return(undefined);
  }
}

/** Maximal runs of non-zero zero-blocks of one span; blocks align to the disk, not the span. */
function* runsOf(window: WindowRead, span: Span, zeroBlockBytes: number): Generator<NonZeroRun> {
  const data = window.buffer.subarray(span.offset - window.start, span.offset + span.length - window.start);
  for (const run of nonZeroBlockRuns(data, zeroBlockBytes, span.offset)) {
    yield { offset: span.offset + run.start, data: data.subarray(run.start, run.end) };
  }
}
