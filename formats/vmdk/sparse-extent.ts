// A hosted sparse extent (KDMV): monolithicSparse, each file of twoGbMaxExtentSparse, delta links
// and streamOptimized. Reads walk the grain map for the requested range and merge neighbouring
// grains that are also neighbours in the file into one read, and grains that follow each other in
// the file but not in virtual space (zero grains between them) into one scattered read (readv);
// compressed grains go through compressed-grains.ts.

import { mapLimit } from '../../lib/map-limit.js';
import type { WarningSink } from '../../lib/warnings.js';
import { type CompressedGrain, prewarmInflation, readCompressedGrains } from './compressed-grains.js';
import { GTE_UNALLOCATED, GTE_ZEROED, SECTOR_SIZE } from './constants.js';
import { GrainMap } from './grain-map.js';
import { readCowdGeometry } from './cowd-header.js';
import { type SparseGeometry, readSparseGeometry } from './sparse-header-check.js';
import { type Fallback, type Segment, type VmdkExtent, pushSegment, readExact, readvExact, type ExtentHandle } from './vmdk-extent.js';

const READS_IN_FLIGHT = 8;
/** Bounds of one scattered read (readv) over grains that follow each other in the file. */
const MAX_CHAIN_BYTES = 8 * 1024 * 1024;
const MAX_CHAIN_RUNS = 512;

interface Run {
  offset: number;
  length: number;
  kind: 'data' | 'zero' | 'absent';
  /** File byte offset of the first byte, data runs only. */
  fileOffset: number;
}

/**
 * Groups data runs whose grains follow each other in the file (but not in virtual space: zero or
 * absent grains lie between them) into chains read with one readv; absent runs stay alone.
 */
function fileChains(runs: readonly Run[]): Run[][] {
  const chains: Run[][] = [];
  let chain: Run[] | undefined; // the data chain being extended
  let bytes = 0;
  for (const run of runs) {
    if (run.kind !== 'data') {
      chains.push([run]);
      continue;
    }
    const last = chain?.[chain.length - 1];
    if (
      chain !== undefined &&
      last !== undefined &&
      last.fileOffset + last.length === run.fileOffset &&
      chain.length < MAX_CHAIN_RUNS &&
      bytes + run.length <= MAX_CHAIN_BYTES
    ) {
      chain.push(run);
      bytes += run.length;
    } else {
      chain = [run];
      chains.push(chain);
      bytes = run.length;
    }
  }
  return chains;
}

export class SparseExtent implements VmdkExtent {
  readonly sizeBytes: number;
  private readonly grainBytes: number;
  private warnedStrayZero = false;

  private constructor(
    private readonly handle: ExtentHandle,
    readonly path: string,
    readonly geometry: SparseGeometry,
    private readonly map: GrainMap | undefined,
    private readonly onWarning: WarningSink,
    private readonly fileSize: number,
  ) {
    this.sizeBytes = geometry.capacitySectors * SECTOR_SIZE;
    this.grainBytes = geometry.grainSizeSectors * SECTOR_SIZE;
  }

  /** Takes ownership of `handle`. Validates the header and the whole grain map. */
  static async open(handle: ExtentHandle, path: string, onWarning: WarningSink): Promise<SparseExtent> {
    const { size: fileSize } = await handle.stat();
    return SparseExtent.fromGeometry(handle, path, fileSize, await readSparseGeometry(handle, path, fileSize, onWarning), onWarning);
  }

  /** An ESXi vmfsSparse (COWD) redo log: the same two-level map with 4096-entry tables. */
  static async openCowd(handle: ExtentHandle, path: string, onWarning: WarningSink): Promise<SparseExtent> {
    const { size: fileSize } = await handle.stat();
    return SparseExtent.fromGeometry(handle, path, fileSize, await readCowdGeometry(handle, path, fileSize, onWarning), onWarning);
  }

  private static async fromGeometry(
    handle: ExtentHandle,
    path: string,
    fileSize: number,
    geometry: SparseGeometry,
    onWarning: WarningSink,
  ): Promise<SparseExtent> {
    let map: GrainMap | undefined;
    if (geometry.gdEntries > 0) {
      const gdSectors = Math.ceil((geometry.gdEntries * 4) / SECTOR_SIZE);
      const metadata: Array<readonly [number, number]> = [[0, 1]];
      if (geometry.descriptorOffsetSectors > 0) {
        metadata.push([geometry.descriptorOffsetSectors, geometry.descriptorOffsetSectors + geometry.descriptorSizeSectors]);
      }
      metadata.push([geometry.gdOffsetSectors, geometry.gdOffsetSectors + gdSectors]);
      const descriptorEnd = geometry.descriptorOffsetSectors + geometry.descriptorSizeSectors;
      map = await GrainMap.load({
        path,
        handle,
        fileSize,
        capacitySectors: geometry.capacitySectors,
        grainSizeSectors: geometry.grainSizeSectors,
        gtEntries: geometry.gtEntries,
        gdOffsetSectors: geometry.gdOffsetSectors,
        gdEntries: geometry.gdEntries,
        compressed: geometry.compressed,
        // Stream writers place grains right after the descriptor whatever overHead says.
        firstGrainSector: geometry.compressed ? Math.max(1, descriptorEnd) : Math.max(1, geometry.overheadSectors, descriptorEnd),
        metadata,
      });
    }
    const extent = new SparseExtent(handle, path, geometry, map, onWarning, fileSize);
    if (geometry.compressed && map !== undefined && map.allocatedGrains > 0) prewarmInflation();
    if (map !== undefined && map.zeroedGrains > 0 && !geometry.zeroedGrainsFlag) extent.warnStrayZero();
    return extent;
  }

  private warnStrayZero(): void {
    if (this.warnedStrayZero) return;
    this.warnedStrayZero = true;
    this.onWarning({
      code: 'SBM_VMDK_STRAY_ZERO_GTE',
      message: `${this.path}: grain table entries of 1 without the zeroed-grain flag; read as zeros`,
      data: { path: this.path },
    });
  }

  /** Classifies [offset, offset+length) grain by grain, merging file-contiguous data grains. */
  private async runs(offset: number, length: number): Promise<Run[]> {
    const runs: Run[] = [];
    if (length === 0) return runs;
    const end = offset + length;
    const push = (start: number, stop: number, kind: Run['kind'], fileOffset: number): void => {
      const last = runs[runs.length - 1];
      const merges =
        last !== undefined &&
        last.kind === kind &&
        last.offset + last.length === start &&
        (kind !== 'data' || (!this.geometry.compressed && last.fileOffset + last.length === fileOffset));
      if (merges) last.length += stop - start;
      else runs.push({ offset: start, length: stop - start, kind, fileOffset });
    };
    const map = this.map;
    if (map === undefined) {
      push(offset, end, 'absent', 0);
      return runs;
    }
    // One grain table at a time; an unallocated table is one absent run, without a per-grain loop.
    const gtBytesCovered = map.gtEntries * this.grainBytes;
    for (let gtIndex = Math.floor(offset / gtBytesCovered); gtIndex * gtBytesCovered < end; gtIndex++) {
      const tableStart = gtIndex * gtBytesCovered;
      const table = await map.table(gtIndex);
      if (table === undefined) {
        push(Math.max(offset, tableStart), Math.min(end, tableStart + gtBytesCovered), 'absent', 0);
        continue;
      }
      const firstGrain = Math.floor(Math.max(offset, tableStart) / this.grainBytes);
      const lastGrain = Math.floor((Math.min(end, tableStart + gtBytesCovered) - 1) / this.grainBytes);
      for (let grain = firstGrain; grain <= lastGrain; grain++) {
        const entry = table[grain - gtIndex * map.gtEntries] ?? GTE_UNALLOCATED;
        const start = Math.max(offset, grain * this.grainBytes);
        const stop = Math.min(end, (grain + 1) * this.grainBytes);
        const kind = entry === GTE_UNALLOCATED ? 'absent' : entry === GTE_ZEROED ? 'zero' : 'data';
        push(start, stop, kind, kind === 'data' ? entry * SECTOR_SIZE + (start - grain * this.grainBytes) : 0);
      }
    }
    return runs;
  }

  async segments(offset: number, length: number): Promise<Segment[]> {
    const list: Segment[] = [];
    for (const run of await this.runs(offset, length)) pushSegment(list, { offset: run.offset, length: run.length, kind: run.kind });
    return list;
  }

  async read(offset: number, target: Uint8Array, fallback: Fallback): Promise<void> {
    const runs = await this.runs(offset, target.length);
    const compressed: CompressedGrain[] = [];
    const direct: Run[] = [];
    for (const run of runs) {
      const view = target.subarray(run.offset - offset, run.offset - offset + run.length);
      if (run.kind === 'zero') view.fill(0);
      else if (run.kind === 'absent') direct.push(run);
      else if (this.geometry.compressed) {
        const grain = Math.floor(run.offset / this.grainBytes);
        compressed.push({
          grain,
          markerOffset: run.fileOffset - (run.offset - grain * this.grainBytes),
          view,
          offsetInGrain: run.offset - grain * this.grainBytes,
        });
      } else direct.push(run);
    }
    await mapLimit(fileChains(direct), READS_IN_FLIGHT, async (chain) => {
      const views = chain.map((run) => target.subarray(run.offset - offset, run.offset - offset + run.length));
      const first = chain[0];
      if (first === undefined) return;
      if (first.kind === 'absent') await fallback(first.offset, views[0] ?? new Uint8Array(0));
      else if (views.length === 1) await readExact(this.handle, views[0] ?? new Uint8Array(0), first.fileOffset, this.path);
      else await readvExact(this.handle, views, first.fileOffset, this.path);
    });
    if (compressed.length > 0) {
      await readCompressedGrains(
        {
          handle: this.handle,
          path: this.path,
          fileSize: this.fileSize,
          grainBytes: this.grainBytes,
          grainSizeSectors: this.geometry.grainSizeSectors,
          capacityBytes: this.sizeBytes,
          segments: this.handle.segments,
        },
        compressed,
      );
    }
  }

  allocatedBytes(): number {
    if (this.map === undefined) return 0;
    return Math.min(this.sizeBytes, (this.map.allocatedGrains + this.map.zeroedGrains) * this.grainBytes);
  }

  describe(): Record<string, unknown> {
    const g = this.geometry;
    return {
      file: this.path,
      type: g.label,
      size: this.sizeBytes,
      offset: 0,
      version: g.version,
      flags: `0x${(g.flags >>> 0).toString(16)}`,
      grainSizeSectors: g.grainSizeSectors,
      compressed: g.compressed,
      zeroedGrains: this.map?.zeroedGrains ?? 0,
      allocatedGrains: this.map?.allocatedGrains ?? 0,
      uncleanShutdown: g.uncleanShutdown,
    };
  }

  /** The embedded descriptor area (empty if none). */
  async embeddedDescriptor(): Promise<Buffer> {
    const g = this.geometry;
    if (g.descriptorOffsetSectors === 0 || g.descriptorSizeSectors === 0) return Buffer.alloc(0);
    const raw = Buffer.alloc(g.descriptorSizeSectors * SECTOR_SIZE);
    await readExact(this.handle, raw, g.descriptorOffsetSectors * SECTOR_SIZE, this.path);
    return raw;
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined); // idempotent: a second close is harmless
  }
}
