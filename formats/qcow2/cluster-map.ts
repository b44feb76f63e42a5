// The two-level map from guest clusters to host clusters.
//
//   l2Entries = clusterSize / 8   (16 with extended L2: entry u64 + subcluster bitmap u64)
//   L1[guest >> (clusterBits + log2 l2Entries)] -> L2 table (one cluster), 0 = all unallocated
//   L2[(guest >> clusterBits) & (l2Entries - 1)] -> entry:
//     bit 62 compressed (descriptor: byte offset + extra sectors), else host offset bits 9..55,
//     bit 0 reads as zeros (standard entries); extended L2 bitmap: bits 0..31 subcluster
//     allocated, 32..63 subcluster reads as zeros.
//
// load() reads the L1 and streams every L2 table once to validate it (reserved bits, alignment,
// pointers inside the file and clear of the header, L1, refcount table and L2 tables), so damage
// is found at open, before any output exists. Tables then live in a bounded LRU cache.

import type { FileHandle } from 'node:fs/promises';
import { SbmError } from '../../lib/errors.js';
import { L1E_OFFSET_MASK_HIGH, L1E_OFFSET_MASK_LOW, L1E_RESERVED_HIGH, L1E_RESERVED_LOW } from './constants.js';
import { type EntryCheck, checkL2Entry, entryOffset } from './l2-entry.js';
import type { Qcow2Header } from './qcow2-header.js';
import { readExactly } from './read-exactly.js';

const L2_CACHE_BYTES = 16 * 1024 * 1024;
const VALIDATE_BATCH_BYTES = 4 * 1024 * 1024;

export interface ClusterMapSource {
  readonly path: string;
  readonly handle: FileHandle;
  readonly fileSize: number;
  readonly header: Qcow2Header;
}

export class ClusterMap {
  readonly entryBytes: number;
  readonly l2Entries: number;
  readonly totalClusters: number;
  /** Guest clusters found at load: plain data, compressed, reading as zeros. */
  readonly counts = { data: 0, compressed: 0, zero: 0 };
  private readonly cache = new Map<number, Buffer>();
  private cachedBytes = 0;
  /** 1 for tables found all-zero at load: no I/O later. */
  private readonly emptyTables: Uint8Array;

  private constructor(
    private readonly source: ClusterMapSource,
    /** Host offset of each used L1 slot's L2 table; 0 = none. */
    private readonly l2Offsets: Float64Array,
  ) {
    const { header } = source;
    this.entryBytes = header.extendedL2 ? 16 : 8;
    this.l2Entries = header.clusterSize / this.entryBytes;
    this.totalClusters = Math.ceil(header.sizeBytes / header.clusterSize);
    this.emptyTables = new Uint8Array(l2Offsets.length);
  }

  static async load(source: ClusterMapSource): Promise<ClusterMap> {
    const { header, path, fileSize } = source;
    const l2Entries = header.clusterSize / (header.extendedL2 ? 16 : 8);
    // Entries past what the disk needs map snapshot VM state; the disk never reads them.
    const used = Math.ceil(Math.ceil(header.sizeBytes / header.clusterSize) / l2Entries);
    const raw = Buffer.alloc(used * 8);
    if (used > 0) await readExactly(source.handle, raw, header.l1TableOffset, path, 'L1 table');
    const offsets = new Float64Array(used);
    const metadata = fixedMetadata(header);
    const seen = new Set<number>();
    for (let index = 0; index < used; index++) {
      const high = raw.readUInt32BE(index * 8);
      const low = raw.readUInt32BE(index * 8 + 4);
      if ((high & L1E_RESERVED_HIGH) !== 0 || (low & L1E_RESERVED_LOW) !== 0) {
        throw corrupt(path, `L1 entry ${index} has reserved bits set or an unaligned L2 offset`);
      }
      const offset = entryOffset(high, low, L1E_OFFSET_MASK_HIGH, L1E_OFFSET_MASK_LOW);
      if (offset === 0) continue;
      if (offset % header.clusterSize !== 0 || offset + header.clusterSize > fileSize) {
        throw corrupt(path, `L2 table ${index} at ${offset} is misaligned or lies past the end of the file`);
      }
      if (metadata.some(([start, end]) => offset < end && offset + header.clusterSize > start)) {
        throw corrupt(path, `L2 table ${index} at ${offset} overlaps the header, L1 table or refcount table`);
      }
      // A table named twice would be read (and validated) once per name: a small hostile file
      // could make open read terabytes. qemu never shares an active L2 table.
      if (seen.has(offset)) throw corrupt(path, `L2 table ${index} at ${offset} is also named by another L1 entry`);
      seen.add(offset);
      offsets[index] = offset;
    }
    const map = new ClusterMap(source, offsets);
    await map.validateAll(metadata);
    return map;
  }

  /** The L2 table of L1 slot `l1Index`, or undefined when the whole range is unallocated. */
  async table(l1Index: number): Promise<Buffer | undefined> {
    const offset = this.l2Offsets[l1Index] ?? 0;
    if (offset === 0 || this.emptyTables[l1Index] === 1) return undefined;
    const hit = this.cache.get(l1Index);
    if (hit !== undefined) {
      this.cache.delete(l1Index);
      this.cache.set(l1Index, hit);
      return hit;
    }
    const table = Buffer.alloc(this.source.header.clusterSize);
    await readExactly(this.source.handle, table, offset, this.source.path, `L2 table ${l1Index}`);
    this.remember(l1Index, table);
    return table;
  }

  private remember(l1Index: number, table: Buffer): void {
    this.cache.set(l1Index, table);
    this.cachedBytes += table.length;
    while (this.cachedBytes > L2_CACHE_BYTES) {
      const oldest = this.cache.keys().next();
      if (oldest.done === true) break;
      this.cachedBytes -= this.cache.get(oldest.value)?.length ?? 0;
      this.cache.delete(oldest.value);
    }
  }

  /** Reads every L2 table once, in file order and in merged batches, checking each entry. */
  private async validateAll(fixed: ReadonlyArray<readonly [number, number]>): Promise<void> {
    const { header, path, fileSize, handle } = this.source;
    const clusterSize = header.clusterSize;
    const tables: Array<{ l1Index: number; start: number }> = [];
    const l2Clusters = new Set<number>();
    this.l2Offsets.forEach((start, l1Index) => {
      if (start === 0) return;
      tables.push({ l1Index, start });
      l2Clusters.add(start / clusterSize);
    });
    const check: EntryCheck = { header, path, fileSize, fixed, l2Clusters };
    tables.sort((a, b) => a.start - b.start);
    let index = 0;
    while (index < tables.length) {
      const first = tables[index];
      if (first === undefined) break;
      let last = index;
      while (last + 1 < tables.length) {
        const next = tables[last + 1];
        if (next === undefined || next.start + clusterSize - first.start > VALIDATE_BATCH_BYTES) break;
        last++;
      }
      const end = (tables[last]?.start ?? first.start) + clusterSize;
      const raw = Buffer.alloc(end - first.start);
      await readExactly(handle, raw, first.start, path, 'L2 tables');
      for (let position = index; position <= last; position++) {
        const entry = tables[position];
        if (entry === undefined) continue;
        const at = entry.start - first.start;
        if (this.checkTable(entry.l1Index, raw, at, check)) this.emptyTables[entry.l1Index] = 1;
        else if (this.cachedBytes + clusterSize <= L2_CACHE_BYTES)
          this.remember(entry.l1Index, Buffer.from(raw.subarray(at, at + clusterSize)));
      }
      index = last + 1;
    }
  }

  /** Checks one table's entries for guest clusters inside the disk; true when all are 0. */
  private checkTable(l1Index: number, raw: Buffer, at: number, check: EntryCheck): boolean {
    const firstCluster = l1Index * this.l2Entries;
    const usable = Math.max(0, Math.min(this.l2Entries, this.totalClusters - firstCluster));
    let empty = true;
    for (let index = 0; index < usable; index++) {
      const position = at + index * this.entryBytes;
      const kind = checkL2Entry(raw, position, firstCluster + index, check);
      if (kind === 'unallocated') continue;
      empty = false;
      this.counts[kind]++;
    }
    return empty;
  }
}

/** [start, end) byte ranges no L2 table or data cluster may overlap: cluster 0, the L1 and refcount tables. */
function fixedMetadata(header: Qcow2Header): Array<readonly [number, number]> {
  const ranges: Array<readonly [number, number]> = [[0, header.clusterSize]];
  if (header.l1Size > 0) ranges.push([header.l1TableOffset, header.l1TableOffset + header.l1Size * 8]);
  ranges.push([header.refcountTableOffset, header.refcountTableOffset + header.refcountTableClusters * header.clusterSize]);
  return ranges;
}

function corrupt(path: string, why: string): SbmError {
  return new SbmError('SBM_CORRUPT', `${path}: ${why}`, { path });
}
