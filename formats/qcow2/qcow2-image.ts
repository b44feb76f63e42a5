// One qcow2 image as a read-only BlockDevice. A guest range is cut into runs by the cluster map:
// host data (contiguous host clusters merged into one read), compressed clusters (decoded once
// and kept in a small cache, since copies read them in pieces), zeros, and absent ranges, which
// the backing image answers (zeros past its end, or without one).

import type { FileHandle } from 'node:fs/promises';
import { type Extent, type WriteOptions, checkRange, pushExtent } from '../../lib/block-device.js';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';
import { mapLimit } from '../../lib/map-limit.js';
import { type ImageLayer, isLayered, wholeLayer } from '../../lib/image-layers.js';
import type { SbmWarning } from '../../lib/warnings.js';
import type { ImageReader } from '../image-format.js';
import { decompressCluster } from './cluster-decompressor.js';
import type { ClusterMap } from './cluster-map.js';
import { QCOW2_COMPRESSION_TYPE_ZSTD, QCOW_EXTL2_SUBCLUSTERS_PER_CLUSTER } from './constants.js';
import { type ClusterEntry, decodeL2Entry, emptyEntry } from './l2-entry.js';
import type { Qcow2Header } from './qcow2-header.js';
import type { BitmapInfo, SnapshotInfo } from './snapshot-table.js';

type RunKind = 'data' | 'zero' | 'absent' | 'compressed';

interface Run {
  kind: RunKind;
  offset: number;
  length: number;
  /** data: host offset of the run's first byte; compressed: host offset of the stream. */
  host: number;
  compressedLength: number;
}

/** Decoded clusters kept for reads that take a cluster in pieces (at least one 2 MiB cluster). */
const DECODED_CACHE_BYTES = 8 * 1024 * 1024;
const COMPRESSED_SPAN_BYTES = 4 * 1024 * 1024;
/** Streams this close together are read in one span (the gap is read and dropped). */
const COMPRESSED_GAP_BYTES = 64 * 1024;
const DECODE_LANES = 4;

export interface Qcow2Parts {
  readonly path: string;
  readonly handle: FileHandle;
  readonly header: Qcow2Header;
  readonly map: ClusterMap;
  readonly backing: ImageReader | undefined;
  /** The backing file as resolved on disk. */
  readonly backingPath: string | undefined;
  readonly snapshots: readonly SnapshotInfo[];
  readonly bitmaps: readonly BitmapInfo[];
  readonly warnings: readonly SbmWarning[];
}

export class Qcow2Image implements ImageReader {
  readonly formatName = 'qcow2';
  readonly readOnly = true;
  readonly preferredBlockSize: number;
  readonly minimumBlockSize = 512;
  readonly sizeBytes: number;
  private readonly decoded = new Map<number, Buffer>();
  private readonly scratch: ClusterEntry = emptyEntry();
  private closed = false;

  constructor(private readonly parts: Qcow2Parts) {
    this.sizeBytes = parts.header.sizeBytes;
    this.preferredBlockSize = Math.max(64 * 1024, parts.header.clusterSize);
  }

  get path(): string {
    return this.parts.path;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, target.length);
    const compressed: Run[] = [];
    for (const run of await this.runs(offset, target.length)) {
      const view = target.subarray(run.offset - offset, run.offset - offset + run.length);
      if (run.kind === 'zero') view.fill(0);
      else if (run.kind === 'absent') await this.readBacking(run.offset, view);
      else if (run.kind === 'data') await this.readHost(view, run.host);
      else compressed.push(run);
    }
    if (compressed.length > 0) await this.readCompressed(compressed, offset, target);
  }

  /**
   * Compressed streams sit back to back on the host: read them in spans of up to 4 MiB, then
   * decode up to four clusters at once (deflate runs on libuv's thread pool).
   */
  private async readCompressed(runs: Run[], offset: number, target: Uint8Array): Promise<void> {
    const clusterSize = this.parts.header.clusterSize;
    const place = (run: Run, cluster: Buffer): void => {
      const inCluster = run.offset % clusterSize;
      target.set(cluster.subarray(inCluster, inCluster + run.length), run.offset - offset);
    };
    const pending = runs.filter((run) => {
      const hit = this.decoded.get(run.host);
      if (hit !== undefined) place(run, hit);
      return hit === undefined;
    });
    let index = 0;
    while (index < pending.length) {
      const first = pending[index] as Run;
      let spanStart = first.host;
      let spanEnd = first.host + first.compressedLength;
      let last = index;
      while (last + 1 < pending.length) {
        const next = pending[last + 1] as Run;
        const start = Math.min(spanStart, next.host);
        const end = Math.max(spanEnd, next.host + next.compressedLength);
        if (end - start > COMPRESSED_SPAN_BYTES || next.host > spanEnd + COMPRESSED_GAP_BYTES || next.host < spanStart) break;
        spanStart = start;
        spanEnd = end;
        last++;
      }
      const span = await this.readSpan(spanStart, spanEnd - spanStart);
      await mapLimit(pending.slice(index, last + 1), DECODE_LANES, async (run) => {
        place(run, await this.decodedCluster(run, span.subarray(run.host - spanStart, run.host - spanStart + run.compressedLength)));
      });
      index = last + 1;
    }
  }

  private async readSpan(host: number, length: number): Promise<Buffer> {
    const span = Buffer.alloc(length);
    try {
      // The last sector of the file may be short: readFully zero-fills past the end, as qemu reads it.
      await readFully(this.parts.handle, span, host);
    } catch (error) {
      throw fromSystemError(error, 'cannot read qcow2 compressed data', this.parts.path);
    }
    return span;
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, length);
    const list: Extent[] = [];
    for (const run of await this.runs(offset, length)) {
      if (run.kind !== 'absent') {
        pushExtent(list, { offset: run.offset, length: run.length, kind: run.kind === 'zero' ? 'zero' : 'data' });
        continue;
      }
      const backing = this.parts.backing;
      const inside = backing === undefined ? 0 : Math.max(0, Math.min(run.length, backing.sizeBytes - run.offset));
      if (backing !== undefined && inside > 0) for (const extent of await backing.extents(run.offset, inside)) pushExtent(list, extent);
      pushExtent(list, { offset: run.offset + inside, length: run.length - inside, kind: 'hole' });
    }
    return list;
  }

  /** Cuts [offset, offset+length) into runs, merging neighbours of one kind (data: contiguous on the host). */
  private async runs(offset: number, length: number): Promise<Run[]> {
    const { header, map } = this.parts;
    const clusterSize = header.clusterSize;
    const tableSpan = clusterSize * map.l2Entries;
    const list: Run[] = [];
    const end = offset + length;
    let position = offset;
    while (position < end) {
      const l1Index = Math.floor(position / tableSpan);
      const tableEnd = Math.min(end, (l1Index + 1) * tableSpan);
      const table = await map.table(l1Index);
      if (table === undefined) {
        push(list, 'absent', position, tableEnd - position, 0);
        position = tableEnd;
        continue;
      }
      while (position < tableEnd) {
        const cluster = Math.floor(position / clusterSize);
        const inCluster = position - cluster * clusterSize;
        const take = Math.min(clusterSize - inCluster, tableEnd - position);
        const entry = decodeL2Entry(table, (cluster - l1Index * map.l2Entries) * map.entryBytes, header, this.scratch);
        if (entry.kind === 'subclusters') this.subclusterRuns(list, entry, position, inCluster, take);
        else if (entry.kind === 'compressed')
          list.push({ kind: 'compressed', offset: position, length: take, host: entry.host, compressedLength: entry.compressedLength });
        else if (entry.kind === 'data') push(list, 'data', position, take, entry.host + inCluster);
        else push(list, entry.kind === 'zero' ? 'zero' : 'absent', position, take, 0);
        position += take;
      }
    }
    return list;
  }

  private subclusterRuns(list: Run[], entry: ClusterEntry, position: number, inCluster: number, take: number): void {
    const subclusterSize = this.parts.header.clusterSize / QCOW_EXTL2_SUBCLUSTERS_PER_CLUSTER;
    let at = inCluster;
    const stop = inCluster + take;
    while (at < stop) {
      const index = Math.floor(at / subclusterSize);
      const next = Math.min(stop, (index + 1) * subclusterSize);
      const bit = 2 ** index;
      const guest = position + (at - inCluster);
      if ((entry.allocBits & bit) !== 0) push(list, 'data', guest, next - at, entry.host + at);
      else push(list, (entry.zeroBits & bit) !== 0 ? 'zero' : 'absent', guest, next - at, 0);
      at = next;
    }
  }

  private async readHost(view: Uint8Array, host: number): Promise<void> {
    let got: number;
    try {
      got = await readFully(this.parts.handle, view, host);
    } catch (error) {
      throw fromSystemError(error, 'cannot read qcow2 data', this.parts.path);
    }
    if (got < view.length) {
      throw new SbmError('SBM_CORRUPT', `${this.parts.path}: data at ${host} lies past the end of the file (truncated after open?)`, {
        path: this.parts.path,
      });
    }
  }

  private async decodedCluster(run: Run, input: Buffer): Promise<Buffer> {
    const hit = this.decoded.get(run.host);
    if (hit !== undefined) return hit;
    const { header, path } = this.parts;
    const cluster = await decompressCluster(
      input,
      header.clusterSize,
      header.compressionType,
      `${path}: compressed cluster at ${run.host}`,
    );
    while (this.decoded.size > 0 && (this.decoded.size + 1) * header.clusterSize > DECODED_CACHE_BYTES) {
      const oldest = this.decoded.keys().next();
      if (oldest.done === true) break;
      this.decoded.delete(oldest.value);
    }
    this.decoded.set(run.host, cluster);
    return cluster;
  }

  /** Reads from the backing image; past its end (or with none) reads zeros. */
  private async readBacking(offset: number, view: Uint8Array): Promise<void> {
    const backing = this.parts.backing;
    const inside = backing === undefined ? 0 : Math.max(0, Math.min(view.length, backing.sizeBytes - offset));
    if (backing !== undefined && inside > 0) await backing.readInto(offset, view.subarray(0, inside));
    view.fill(0, inside);
  }

  /** The chain as `sbm sync` reads it: this image's own clusters, then its backing chain. */
  layers(): ImageLayer[] {
    const own: ImageLayer = {
      files: [this.parts.path],
      ids: { format: 'qcow2', ...(this.parts.header.backingFile === undefined ? {} : { backingFile: this.parts.header.backingFile }) },
      allocated: async (offset, length) => {
        this.assertOpen();
        const end = Math.min(offset + length, this.sizeBytes);
        const list: Extent[] = [];
        if (end <= offset) return list;
        for (const run of await this.runs(offset, end - offset)) {
          if (run.kind !== 'absent')
            pushExtent(list, { offset: run.offset, length: run.length, kind: run.kind === 'zero' ? 'zero' : 'data' });
        }
        return list;
      },
    };
    const backing = this.parts.backing;
    if (backing === undefined) return [own];
    if (isLayered(backing)) return [own, ...backing.layers()];
    return [own, wholeLayer([this.parts.backingPath ?? ''], backing.sizeBytes, { format: backing.formatName })];
  }

  async details(): Promise<Record<string, unknown>> {
    const { header, map, backing } = this.parts;
    const facts: Record<string, unknown> = {
      version: header.version,
      compat: header.version === 2 ? '0.10' : '1.1',
      clusterSizeBytes: header.clusterSize,
      compressionType: header.compressionType === QCOW2_COMPRESSION_TYPE_ZSTD ? 'zstd' : 'deflate',
      extendedL2: header.extendedL2,
      refcountBits: 2 ** header.refcountOrder,
      backingFile: header.backingFile,
      backingFormat: header.extensions.backingFormat,
      backingPath: this.parts.backingPath,
      backingImageFormat: backing?.formatName,
      dataClusters: map.counts.data,
      compressedClusters: map.counts.compressed,
      zeroClusters: map.counts.zero,
      dirty: header.dirty ? true : undefined,
      snapshots: this.parts.snapshots,
      bitmaps: this.parts.bitmaps,
      warnings: this.parts.warnings.map((warning) => `${warning.code}: ${warning.message}`),
    };
    for (const key of Object.keys(facts)) if (facts[key] === undefined) delete facts[key];
    return facts;
  }

  async write(_offset: number, _data: Uint8Array, _options?: WriteOptions): Promise<void> {
    throw this.readOnlyError();
  }

  async writeZeroes(): Promise<void> {
    throw this.readOnlyError();
  }

  async trim(): Promise<void> {
    throw this.readOnlyError();
  }

  async flush(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.decoded.clear();
    try {
      await this.parts.handle.close();
    } finally {
      await this.parts.backing?.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private readOnlyError(): SbmError {
    return new SbmError('SBM_READ_ONLY', `qcow2 ${this.parts.path} is opened read-only`, { path: this.parts.path });
  }

  private assertOpen(): void {
    if (this.closed) throw new SbmError('SBM_CLOSED', `qcow2 ${this.parts.path} is closed`, { path: this.parts.path });
  }
}

function push(list: Run[], kind: RunKind, offset: number, length: number, host: number): void {
  const last = list[list.length - 1];
  if (
    last !== undefined &&
    last.kind === kind &&
    kind !== 'compressed' &&
    last.offset + last.length === offset &&
    (kind !== 'data' || last.host + last.length === host)
  ) {
    last.length += length;
    return;
  }
  list.push({ kind, offset, length, host, compressedLength: 0 });
}
