// The two-level grain map of a sparse extent: a grain directory (GD) of u32 sector pointers to
// grain tables (GT) of u32 grain sector pointers.
//
//   gtCoverage = gtEntries * grainSize sectors      (512 * 128 = 32 MiB)
//   GDE = GD[floor(lba / gtCoverage)]               0 = whole GT unallocated
//   GTE = GT[floor((lba % gtCoverage) / grainSize)] 0 = absent, 1 = zeroed grain, else sector
//
// load() reads the GD and streams every GT once to validate it (pointers inside the file, tables
// clear of the header, descriptor and GD), so damage is found at open, before any output exists.
// GTs stay in a bounded LRU cache afterwards: a 2 TiB extent does not hold its 128 MiB map.

import { SbmError } from '../../lib/errors.js';
import { GTE_UNALLOCATED, GTE_ZEROED, SECTOR_SIZE } from './constants.js';
import { readExact, type ExtentHandle } from './vmdk-extent.js';

export interface GrainMapLayout {
  readonly path: string;
  readonly handle: ExtentHandle;
  readonly fileSize: number;
  readonly capacitySectors: number;
  readonly grainSizeSectors: number;
  readonly gtEntries: number;
  readonly gdOffsetSectors: number;
  readonly gdEntries: number;
  /** Grains are compressed with markers: a GTE points at a 12-byte marker, size unknown until read. */
  readonly compressed: boolean;
  /** Lowest sector a grain may start at. */
  readonly firstGrainSector: number;
  /** [start, end) sector ranges no table may overlap (header, descriptor, GD). */
  readonly metadata: ReadonlyArray<readonly [number, number]>;
}

const GT_CACHE_BYTES = 8 * 1024 * 1024;
const VALIDATE_BATCH_BYTES = 4 * 1024 * 1024;

export class GrainMap {
  readonly totalGrains: number;
  readonly grainBytes: number;
  private readonly cache = new Map<number, Uint32Array>();
  /** 1 for tables found all-zero at load (VMware and qemu preallocate every GT): no I/O later. */
  private readonly emptyTables: Uint8Array;
  private cachedBytes = 0;
  allocatedGrains = 0;
  zeroedGrains = 0;

  private constructor(
    private readonly layout: GrainMapLayout,
    private readonly gd: Uint32Array,
  ) {
    this.totalGrains = Math.ceil(layout.capacitySectors / layout.grainSizeSectors);
    this.emptyTables = new Uint8Array(gd.length);
    this.grainBytes = layout.grainSizeSectors * SECTOR_SIZE;
  }

  static async load(layout: GrainMapLayout): Promise<GrainMap> {
    const gdBytes = layout.gdEntries * 4;
    const gdStart = layout.gdOffsetSectors * SECTOR_SIZE;
    if (layout.gdOffsetSectors === 0 || gdStart + gdBytes > layout.fileSize) {
      throw new SbmError('SBM_CORRUPT', `${layout.path}: grain directory at sector ${layout.gdOffsetSectors} lies outside the file`, {
        path: layout.path,
      });
    }
    const raw = Buffer.alloc(gdBytes);
    await readExact(layout.handle, raw, gdStart, layout.path);
    const gd = new Uint32Array(layout.gdEntries);
    for (let index = 0; index < gd.length; index++) gd[index] = raw.readUInt32LE(index * 4);
    const map = new GrainMap(layout, gd);
    await map.validateAll();
    return map;
  }

  get gtEntries(): number {
    return this.layout.gtEntries;
  }

  private gtBytes(): number {
    return this.layout.gtEntries * 4;
  }

  /** Grain table `gtIndex`, or undefined when its GDE is 0 (the whole table is unallocated). */
  async table(gtIndex: number): Promise<Uint32Array | undefined> {
    const gde = this.gd[gtIndex] ?? 0;
    if (gde === 0 || this.emptyTables[gtIndex] === 1) return undefined;
    const hit = this.cache.get(gtIndex);
    if (hit !== undefined) {
      this.cache.delete(gtIndex);
      this.cache.set(gtIndex, hit);
      return hit;
    }
    const raw = Buffer.alloc(this.gtBytes());
    await readExact(this.layout.handle, raw, gde * SECTOR_SIZE, this.layout.path);
    const table = this.decodeTable(gtIndex, raw, 0, false);
    this.remember(gtIndex, table);
    return table;
  }

  private remember(gtIndex: number, table: Uint32Array): void {
    this.cache.set(gtIndex, table);
    this.cachedBytes += table.byteLength;
    while (this.cachedBytes > GT_CACHE_BYTES) {
      const oldest = this.cache.keys().next();
      if (oldest.done === true) break;
      this.cachedBytes -= this.cache.get(oldest.value)?.byteLength ?? 0;
      this.cache.delete(oldest.value);
    }
  }

  /** Reads every GT once, in file order and in merged batches, checking each pointer. */
  private async validateAll(): Promise<void> {
    const { path, fileSize, metadata } = this.layout;
    const gtBytes = this.gtBytes();
    const tables: Array<{ gtIndex: number; start: number }> = [];
    for (let gtIndex = 0; gtIndex < this.gd.length; gtIndex++) {
      const gde = this.gd[gtIndex] ?? 0;
      if (gde === 0) continue;
      const start = gde * SECTOR_SIZE;
      if (start + gtBytes > fileSize) {
        throw new SbmError('SBM_CORRUPT', `${path}: grain table ${gtIndex} at sector ${gde} lies past end of file`, { path, gtIndex });
      }
      const endSector = gde + Math.ceil(gtBytes / SECTOR_SIZE);
      for (const [low, high] of metadata) {
        if (gde < high && endSector > low) {
          throw new SbmError(
            'SBM_CORRUPT',
            `${path}: grain table ${gtIndex} at sector ${gde} overlaps the header, descriptor or grain directory`,
            {
              path,
              gtIndex,
            },
          );
        }
      }
      tables.push({ gtIndex, start });
    }
    tables.sort((a, b) => a.start - b.start);
    let index = 0;
    while (index < tables.length) {
      const first = tables[index];
      if (first === undefined) break;
      let last = index;
      while (last + 1 < tables.length) {
        const next = tables[last + 1];
        if (next === undefined || next.start + gtBytes - first.start > VALIDATE_BATCH_BYTES) break;
        last++;
      }
      const end = (tables[last]?.start ?? first.start) + gtBytes;
      const raw = Buffer.alloc(end - first.start);
      await readExact(this.layout.handle, raw, first.start, path);
      for (let position = index; position <= last; position++) {
        const entry = tables[position];
        if (entry === undefined) continue;
        const table = this.decodeTable(entry.gtIndex, raw, entry.start - first.start, true);
        if (table.every((value) => value === 0)) this.emptyTables[entry.gtIndex] = 1;
        else if (this.cachedBytes + table.byteLength <= GT_CACHE_BYTES) this.remember(entry.gtIndex, table);
      }
      index = last + 1;
    }
  }

  /** Decodes one GT and checks its entries; entries past the capacity are ignored (qemu writes them). */
  private decodeTable(gtIndex: number, raw: Buffer, at: number, count: boolean): Uint32Array {
    const { gtEntries, grainSizeSectors, capacitySectors, fileSize, path, compressed, firstGrainSector } = this.layout;
    const table = new Uint32Array(gtEntries);
    const firstGrain = gtIndex * gtEntries;
    const usable = Math.max(0, Math.min(gtEntries, this.totalGrains - firstGrain));
    for (let index = 0; index < usable; index++) {
      const entry = raw.readUInt32LE(at + index * 4);
      if (entry === GTE_UNALLOCATED) continue;
      table[index] = entry;
      if (entry === GTE_ZEROED) {
        if (count) this.zeroedGrains++;
        continue;
      }
      const lba = (firstGrain + index) * grainSizeSectors;
      const needed = compressed ? 12 : Math.min(grainSizeSectors, capacitySectors - lba) * SECTOR_SIZE;
      if (entry < firstGrainSector || entry * SECTOR_SIZE + needed > fileSize) {
        const where = entry < firstGrainSector ? 'inside the metadata area' : 'past end of file';
        throw new SbmError('SBM_CORRUPT', `${path}: grain ${firstGrain + index} points to sector ${entry}, ${where}`, {
          path,
          grain: firstGrain + index,
          sector: entry,
        });
      }
      if (count) this.allocatedGrains++;
    }
    return table;
  }

  /** Reports stray GTE 1 values (called by the extent, which knows the header flags). */
  get hasZeroedGrains(): boolean {
    return this.zeroedGrains > 0;
  }
}
