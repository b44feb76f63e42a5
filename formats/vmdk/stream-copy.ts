// A streamOptimized VMDK read front to back, in one pass, from a stream with no random access (a
// gzip-compressed disk inside an OVA): each grain marker carries the sector it belongs at, so
// every grain is inflated and written there as it arrives, and the grain tables, directory and
// footer that follow are skipped. Nothing is staged: memory holds a few grains at a time.
//
//   header (sector 0) | descriptor ... overHead | marker+grain | marker+grain | GT marker + GT
//   sectors | ... | GD marker + GD | footer marker + footer | end-of-stream marker
//
// The format is written in disk order by every producer (it exists for streaming), so grains
// must come in strictly ascending sectors: a grain out of order, or twice, is refused
// (SBM_UNSUPPORTED) rather than resolved through the tables. A stream cut inside a marker or a
// grain (or, with the tables at the end, before its end-of-stream marker), a grain outside the
// disk, one that does not inflate to a full grain, or a stream longer than any such disk can
// be: SBM_CORRUPT. A stream cut cleanly between grains is found by what carries it (gzip's
// length and CRC-32, the package manifest's digest).

import { promisify } from 'node:util';
import { inflate, inflateRaw } from 'node:zlib';
import { toSafeInteger } from '../../lib/binary-layout.js';
import { type BlockDevice, isAllZero } from '../../lib/block-device.js';
import { ByteQueue } from '../../lib/byte-queue.js';
import type { CopyOptions, CopyResult } from '../../lib/copy-device.js';
import { SbmError } from '../../lib/errors.js';
import {
  GRAIN_MARKER_EOS,
  GRAIN_MARKER_FOOTER,
  GRAIN_MARKER_GRAIN_DIRECTORY,
  GRAIN_MARKER_GRAIN_TABLE,
  GRAIN_MARKER_PROGRESS,
  MAX_COMPRESSED_GRAIN_SIZE_SECTORS,
  SECTOR_SIZE,
  SPARSEFLAG_COMPRESSED,
  SPARSEFLAG_EMBEDDED_LBA,
  SPARSE_GD_AT_END,
} from './constants.js';
import { isZlibHeader, maxCompressedBytes } from './grain-inflater.js';
import { checkHeaderFields } from './sparse-header-check.js';
import { GRAIN_MARKER, METADATA_MARKER, type SparseExtentHeader, decodeSparseHeader } from './sparse-header.js';

const inflateAsync = promisify(inflate);
const inflateRawAsync = promisify(inflateRaw);
/** Grains inflating or being written at once (zlib runs on the thread pool). */
const GRAINS_IN_FLIGHT = 8;
const METADATA_TYPES = new Set([GRAIN_MARKER_GRAIN_TABLE, GRAIN_MARKER_GRAIN_DIRECTORY, GRAIN_MARKER_FOOTER, GRAIN_MARKER_PROGRESS]);

/** What a stream's first sector says. */
export interface StreamGeometry {
  readonly capacityBytes: number;
  readonly grainBytes: number;
  readonly overheadBytes: number;
  /**
   * The grain directory follows the grains (VMware's way), so the stream ends with its footer and
   * an end-of-stream marker. qemu-img puts the tables before the grains and ends after the last
   * grain, with no marker.
   */
  readonly tablesAtEnd: boolean;
}

function corrupt(path: string, why: string): SbmError {
  return new SbmError('SBM_CORRUPT', `${path}: ${why}`, { path });
}

/** The geometry of a streamOptimized header, or undefined when the extent is another kind (it needs random access). */
export function streamGeometry(header: SparseExtentHeader, path: string): StreamGeometry | undefined {
  checkHeaderFields(header, path);
  const streamFlags = SPARSEFLAG_COMPRESSED | SPARSEFLAG_EMBEDDED_LBA;
  if ((header.flags & streamFlags) !== streamFlags) return undefined;
  const grainSectors = toSafeInteger(header.grainSize, 'grainSize', path);
  if (grainSectors < 1 || grainSectors > MAX_COMPRESSED_GRAIN_SIZE_SECTORS || (grainSectors & (grainSectors - 1)) !== 0) {
    throw corrupt(path, `grain size ${header.grainSize} sectors is not a power of two between 1 and ${MAX_COMPRESSED_GRAIN_SIZE_SECTORS}`);
  }
  const capacitySectors = toSafeInteger(header.capacity, 'capacity', path);
  if (capacitySectors * SECTOR_SIZE > Number.MAX_SAFE_INTEGER) throw corrupt(path, `capacity of ${capacitySectors} sectors is absurd`);
  const overheadSectors = toSafeInteger(header.overHead, 'overHead', path);
  if (overheadSectors < 1) throw corrupt(path, `overHead of ${overheadSectors} sectors leaves no room for the header`);
  return {
    capacityBytes: capacitySectors * SECTOR_SIZE,
    grainBytes: grainSectors * SECTOR_SIZE,
    overheadBytes: overheadSectors * SECTOR_SIZE,
    tablesAtEnd: header.gdOffset === SPARSE_GD_AT_END,
  };
}

/** Exact reads from an async byte stream, counting the position and refusing to go past `limitBytes`. */
class StreamCursor {
  private readonly queue = new ByteQueue();
  private readonly iterator: AsyncIterator<Buffer>;
  private ended = false;
  position = 0;

  constructor(
    input: AsyncIterable<Buffer>,
    private readonly path: string,
    private readonly limitBytes: number,
  ) {
    this.iterator = input[Symbol.asyncIterator]();
  }

  /** Exactly `count` bytes, or SBM_CORRUPT when the stream ends first. */
  async take(count: number, what: string): Promise<Buffer> {
    if (!(await this.fill(count))) throw corrupt(this.path, `ends inside ${what} at byte ${this.position + this.queue.length}`);
    this.position += count;
    return this.queue.take(count);
  }

  async skip(count: number, what: string): Promise<void> {
    let left = count;
    while (left > 0) {
      if (this.queue.length === 0 && !(await this.fill(1))) throw corrupt(this.path, `ends inside ${what} at byte ${this.position}`);
      const dropped = this.queue.skip(left);
      left -= dropped;
      this.position += dropped;
    }
  }

  /** True when every byte has been taken and the stream has ended. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  /** Reads the stream to its end (so gzip checks its CRC and length), still within the limit. */
  async drain(): Promise<void> {
    this.position += this.queue.skip(this.queue.length);
    while (await this.fill(1)) this.position += this.queue.skip(this.queue.length);
  }

  /** True once at least `count` bytes are queued; false when the stream ended short. */
  private async fill(count: number): Promise<boolean> {
    while (this.queue.length < count && !this.ended) {
      const next = await this.iterator.next();
      if (next.done === true) {
        this.ended = true;
        break;
      }
      if (this.position + this.queue.length + next.value.length > this.limitBytes) {
        throw corrupt(this.path, `decompresses to more than ${this.limitBytes} bytes, more than its disk can hold`);
      }
      this.queue.push(next.value);
    }
    return this.queue.length >= count;
  }
}

export interface StreamReadOptions {
  /** Names the file in messages. */
  readonly path: string;
  /** The most the stream may hold (a bomb fails instead of running for hours). */
  readonly limitBytes: number;
  /** Checked between grains; throw from it to abort. */
  readonly checkAborted?: () => void;
}

export interface StreamCopyOptions extends CopyOptions, StreamReadOptions {}

/** Told each grain in disk order: its disk offset and compressed bytes; a promise returned runs alongside the walk. */
type GrainVisitor = (offset: number, compressed: Buffer, geometry: StreamGeometry) => Promise<void> | undefined;

/**
 * Walks the streamOptimized VMDK arriving on `input`, checking every marker, and hands each grain
 * to `visit` (at most GRAINS_IN_FLIGHT of its promises at once). Reads `input` to its end.
 */
async function walkVmdkStream(
  input: AsyncIterable<Buffer>,
  options: StreamReadOptions,
  visit: GrainVisitor,
  onGrainQueued?: (offset: number, bytesRead: number) => void,
): Promise<{ geometry: StreamGeometry; bytesRead: number; grains: number }> {
  const { path } = options;
  const cursor = new StreamCursor(input, path, options.limitBytes);
  const geometry = streamGeometry(decodeSparseHeader(await cursor.take(SECTOR_SIZE, 'the header'), 0, path), path);
  if (geometry === undefined)
    throw new SbmError('SBM_UNSUPPORTED', `${path}: not a streamOptimized VMDK; it cannot be read as a stream`, { path });
  const { capacityBytes, grainBytes } = geometry;
  await cursor.skip(geometry.overheadBytes - SECTOR_SIZE, 'the descriptor');
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let nextSector = 0; // grains must start at or after this sector
  let grains = 0;
  try {
    for (;;) {
      options.checkAborted?.();
      if (failure !== undefined) break;
      const markerAt = cursor.position;
      if (!geometry.tablesAtEnd && (await cursor.atEnd())) break; // qemu-img's streams end after the last grain
      const marker = await cursor.take(GRAIN_MARKER.sizeBytes, geometry.tablesAtEnd ? 'a marker (no end-of-stream marker)' : 'a marker');
      const { lba, size } = GRAIN_MARKER.decode(marker, 0, path);
      if (size === 0) {
        const rest = await cursor.take(METADATA_MARKER.sizeBytes - GRAIN_MARKER.sizeBytes, 'a marker');
        const { type } = METADATA_MARKER.decode(Buffer.concat([marker, rest]), 0, path);
        if (type === GRAIN_MARKER_EOS) break;
        if (!METADATA_TYPES.has(type)) throw corrupt(path, `unknown marker type ${type} at byte ${markerAt}`);
        await cursor.skip(toSafeInteger(lba, 'metadata sectors', path) * SECTOR_SIZE, 'metadata');
        continue;
      }
      const sector = toSafeInteger(lba, 'grain sector', path);
      const offset = sector * SECTOR_SIZE;
      if (offset % grainBytes !== 0 || offset >= capacityBytes) {
        throw corrupt(path, `grain marker at byte ${markerAt} names sector ${sector}, not a grain of the ${capacityBytes}-byte disk`);
      }
      if (size > maxCompressedBytes(grainBytes))
        throw corrupt(path, `grain marker at byte ${markerAt} has an impossible size of ${size} bytes`);
      if (sector < nextSector) {
        throw new SbmError(
          'SBM_UNSUPPORTED',
          `${path}: the grain for sector ${sector} comes after sector ${nextSector - 1} (out of disk order); it cannot be read as a stream`,
          { path },
        );
      }
      nextSector = sector + grainBytes / SECTOR_SIZE;
      const compressed = await cursor.take(size, 'a grain');
      const used = (GRAIN_MARKER.sizeBytes + size) % SECTOR_SIZE;
      if (used !== 0) await cursor.skip(SECTOR_SIZE - used, 'grain padding');
      grains++;
      const task = visit(offset, compressed, geometry);
      onGrainQueued?.(offset, cursor.position);
      if (task === undefined) continue;
      const tracked = task.catch((error: unknown) => {
        failure ??= { error };
      });
      inFlight.add(tracked);
      void tracked.then(() => inFlight.delete(tracked));
      if (inFlight.size >= GRAINS_IN_FLIGHT) await Promise.race(inFlight);
    }
    if (failure === undefined) await cursor.drain(); // gzip's CRC and length are checked at its end
  } catch (error) {
    failure ??= { error };
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure.error;
  return { geometry, bytesRead: cursor.position, grains };
}

/** Inflates a grain and checks it holds the whole grain (the last one: its part inside the disk). */
async function inflateGrain(path: string, offset: number, compressed: Buffer, geometry: StreamGeometry): Promise<Buffer> {
  const { grainBytes, capacityBytes } = geometry;
  const wanted = Math.min(grainBytes, capacityBytes - offset);
  const inflateOptions = { maxOutputLength: grainBytes, chunkSize: Math.max(16 * 1024, grainBytes) };
  let data: Buffer;
  try {
    data = isZlibHeader(compressed) ? await inflateAsync(compressed, inflateOptions) : await inflateRawAsync(compressed, inflateOptions);
  } catch (error) {
    throw corrupt(path, `grain at byte ${offset} of the disk does not inflate: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (data.length < wanted) throw corrupt(path, `grain at byte ${offset} of the disk inflates to ${data.length} of ${wanted} bytes`);
  return data.subarray(0, wanted);
}

/**
 * Copies the streamOptimized VMDK arriving on `input` into `target` (which starts empty: sectors
 * without a grain stay holes). Reads `input` to its end.
 */
export async function copyVmdkStream(input: AsyncIterable<Buffer>, target: BlockDevice, options: StreamCopyOptions): Promise<CopyResult> {
  const started = process.hrtime.bigint();
  const chunkBytes = options.chunkBytes ?? 8 * 1024 * 1024;
  /** Writes not yet finished, per target chunk: a chunk is reported written once all of its are. */
  const chunkWrites = new Map<number, Promise<void>[]>();
  let bytesWritten = 0;
  const chunkWritten = (index: number) =>
    options.onChunkWritten?.(index * chunkBytes, Math.min(chunkBytes, target.sizeBytes - index * chunkBytes));
  const finishChunksBefore = (chunk: number) => {
    for (const [index, writes] of chunkWrites) {
      if (index >= chunk) continue;
      chunkWrites.delete(index);
      // A failed write is reported by the walk itself; its chunk is never called written.
      void Promise.all(writes).then(
        () => chunkWritten(index),
        () => undefined,
      );
    }
  };
  const store: GrainVisitor = (offset, compressed, geometry) => {
    const chunk = Math.floor(offset / chunkBytes);
    finishChunksBefore(chunk);
    const task = (async () => {
      const piece = await inflateGrain(options.path, offset, compressed, geometry);
      if (isAllZero(piece)) return;
      await target.write(offset, piece);
      bytesWritten += piece.length;
    })();
    chunkWrites.set(chunk, [...(chunkWrites.get(chunk) ?? []), task]);
    return task;
  };
  const walked = await walkVmdkStream(input, options, store, (offset, bytesRead) =>
    options.onProgress?.({ bytesDone: offset, bytesTotal: target.sizeBytes, bytesRead, bytesWritten }),
  );
  for (const index of chunkWrites.keys()) chunkWritten(index); // every write has ended by now
  const total = walked.geometry.capacityBytes;
  options.onProgress?.({ bytesDone: total, bytesTotal: total, bytesRead: walked.bytesRead, bytesWritten });
  return { bytesRead: walked.bytesRead, bytesWritten, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/** What a streamOptimized VMDK holds, found by reading it through once without inflating a grain. */
export interface StreamSummary {
  readonly geometry: StreamGeometry;
  /** Grains stored (each counts whole, as a random-access reader reports them). */
  readonly grains: number;
  readonly allocatedBytes: number;
  /** Bytes of the stream. */
  readonly streamBytes: number;
}

/** Reads the stream through once, checking its markers, and counts its grains (none is inflated). */
export async function scanVmdkStream(input: AsyncIterable<Buffer>, options: StreamReadOptions): Promise<StreamSummary> {
  const walked = await walkVmdkStream(input, options, () => undefined);
  return {
    geometry: walked.geometry,
    grains: walked.grains,
    allocatedBytes: Math.min(walked.geometry.capacityBytes, walked.grains * walked.geometry.grainBytes),
    streamBytes: walked.bytesRead,
  };
}
