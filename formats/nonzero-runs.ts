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
// consumer writes the runs of window k. A run's bytes are a view into a reused buffer, valid
// only until the consumer asks for the next run.

import { type BlockDevice, isAllZero } from '../lib/block-device.js';
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

interface Span {
  readonly offset: number;
  readonly length: number;
}

interface WindowRead {
  readonly start: number;
  readonly end: number;
  readonly buffer: Buffer;
  readonly spans: readonly Span[];
}

export async function* nonZeroRuns(source: BlockDevice, options: RunWalkOptions = {}): AsyncGenerator<NonZeroRun> {
  const windowBytes = options.windowBytes ?? DEFAULT_WINDOW_BYTES;
  const zeroBlockBytes = options.zeroBlockBytes ?? DEFAULT_ZERO_BLOCK_BYTES;
  const total = source.sizeBytes;
  // Shared memory, as in copyDevice: a reader that decodes in worker threads decodes straight into it.
  const buffers = [Buffer.from(new SharedArrayBuffer(windowBytes)), Buffer.from(new SharedArrayBuffer(windowBytes))];
  const readWindow = async (start: number, buffer: Buffer): Promise<WindowRead> => {
    const end = Math.min(total, start + windowBytes);
    // One task per window (the chunk is the window), its data extents merged into spans.
    const spans = chunkTasks(await source.extents(start, end - start), windowBytes, total).flatMap((task) => task.spans);
    for (const span of spans) {
      await source.readInto(span.offset, buffer.subarray(span.offset - start, span.offset - start + span.length));
      if (options.stats !== undefined) options.stats.bytesRead += span.length;
    }
    return { start, end, buffer, spans };
  };
  if (total === 0) return;
  let pending: Promise<WindowRead> | undefined = readWindow(0, buffers[0] as Buffer);
  let index = 0;
  try {
    while (pending !== undefined) {
      options.copy?.checkAborted?.();
      const window: WindowRead = await pending;
      index++;
      // Start the next read before handing out this window's runs (the other buffer is free).
      pending = window.end < total ? readWindow(window.end, buffers[index % 2] as Buffer) : undefined;
      for (const span of window.spans) yield* runsOf(window, span, zeroBlockBytes);
      options.copy?.onProgress?.({ bytesDone: window.end, bytesTotal: total });
    }
  } finally {
    // A consumer that stops early (an error while writing) must not leave a read in flight.
    await pending?.catch(() => undefined);
  }
}

/** Maximal runs of non-zero zero-blocks of one span; blocks align to the disk, not the span. */
function* runsOf(window: WindowRead, span: Span, zeroBlockBytes: number): Generator<NonZeroRun> {
  const spanEnd = span.offset + span.length;
  let runStart = -1;
  let position = span.offset;
  while (position <= spanEnd) {
    const end = Math.min(spanEnd, (Math.floor(position / zeroBlockBytes) + 1) * zeroBlockBytes);
    const zero = position === spanEnd || isAllZero(window.buffer.subarray(position - window.start, end - window.start));
    if (!zero) {
      if (runStart < 0) runStart = position;
    } else if (runStart >= 0) {
      yield { offset: runStart, data: window.buffer.subarray(runStart - window.start, position - window.start) };
      runStart = -1;
    }
    if (position === spanEnd) break;
    position = end;
  }
}
