// The Block Allocation Table: one u64 entry per payload block, with a sector bitmap entry after
// every `chunkRatio` payload entries ([MS-VHDX] 2.5).
//
//   chunkRatio   = 2^23 * logicalSectorSize / blockSize   payload blocks per sector bitmap block
//   batIndex(n)  = n + floor(n / chunkRatio)              payload block n
//   sbIndex(k)   = k * (chunkRatio + 1) + chunkRatio      sector bitmap of chunk k
//   entries      = payloadBlocks + floor((payloadBlocks - 1) / chunkRatio)   fixed, dynamic
//                = ceil(payloadBlocks / chunkRatio) * (chunkRatio + 1)      differencing
//
// load() streams the whole table once and validates every entry: known states only
// (PARTIALLY_PRESENT and present sector bitmaps only in differencing disks, and a chunk with
// partially present blocks has its sector bitmap), reserved bits clear,
// every block 1 MiB-aligned, inside the file and clear of the header section, log, BAT, metadata
// and every other block. Afterwards pages of entries live in a bounded LRU cache, so a 64 TiB
// disk does not hold its 512 MiB table.

import {
  BAT_RESERVED_MASK,
  BAT_STATE_MASK,
  HEADER_SECTION_SIZE,
  MiB,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_UNDEFINED,
  PAYLOAD_BLOCK_UNMAPPED,
  PAYLOAD_BLOCK_UNMAPPED_V095,
  PAYLOAD_BLOCK_ZERO,
  SB_BLOCK_NOT_PRESENT,
  SB_BLOCK_PRESENT,
  SECTORS_PER_BITMAP_BLOCK,
  SECTOR_BITMAP_BLOCK_SIZE,
} from './constants.js';
import type { Region } from './header-section.js';
import { BAT_ENTRY } from './layouts.js';
import type { VhdxMetadata } from './metadata.js';
import type { VhdxFile } from './vhdx-file.js';

export interface BatEntry {
  readonly state: number;
  /** Byte offset of the block in the file (meaningful for present blocks). */
  readonly fileOffset: number;
}

const ENTRY_BYTES = BAT_ENTRY.sizeBytes;
const PAGE_ENTRIES = 4096;
const PAGE_BYTES = PAGE_ENTRIES * ENTRY_BYTES;
const CACHE_BYTES = 8 * MiB;
const VALIDATE_BATCH_ENTRIES = 128 * 1024;
/** Above this the MiB-unit overlap map would pass 64 MiB; no VHDX (64 TiB at most) is that big. */
const MAX_FILE_BYTES = 2 ** 49;
const readLow = BAT_ENTRY.reader('low');
const readHigh = BAT_ENTRY.reader('high');

const STATE_NAMES: Record<number, string> = {
  [PAYLOAD_BLOCK_NOT_PRESENT]: 'notPresent',
  [PAYLOAD_BLOCK_UNDEFINED]: 'undefined',
  [PAYLOAD_BLOCK_ZERO]: 'zero',
  [PAYLOAD_BLOCK_UNMAPPED]: 'unmapped',
  [PAYLOAD_BLOCK_UNMAPPED_V095]: 'unmapped',
  [PAYLOAD_BLOCK_FULLY_PRESENT]: 'fullyPresent',
  [PAYLOAD_BLOCK_PARTIALLY_PRESENT]: 'partiallyPresent',
};

/** Marks 1 MiB units of the file as used, so any two structures sharing one are caught. */
class UsedUnits {
  private readonly bits: Uint8Array;
  constructor(fileBytes: number) {
    this.bits = new Uint8Array(Math.ceil(fileBytes / MiB / 8) + 1);
  }
  /** False when a unit of [offset, offset+length) is already taken. */
  claim(offset: number, length: number): boolean {
    const first = Math.floor(offset / MiB);
    const end = Math.ceil((offset + length) / MiB);
    for (let unit = first; unit < end; unit++) {
      const mask = 1 << (unit & 7);
      const at = unit >>> 3;
      if (((this.bits[at] ?? 0) & mask) !== 0) return false;
      this.bits[at] = (this.bits[at] ?? 0) | mask;
    }
    return true;
  }
}

export class BlockAllocationTable {
  readonly chunkRatio: number;
  readonly payloadBlocks: number;
  readonly entryCount: number;
  readonly stateCounts: Record<string, number> = {};
  presentBytes = 0;
  private readonly cache = new Map<number, Buffer>();
  /** A PARTIALLY_PRESENT block was seen in the chunk being validated: its sector bitmap must be present. */
  private chunkNeedsBitmap = false;

  private constructor(
    private readonly file: VhdxFile,
    private readonly region: Region,
    private readonly metadata: VhdxMetadata,
  ) {
    this.chunkRatio = (SECTORS_PER_BITMAP_BLOCK * metadata.logicalSectorSize) / metadata.blockSize;
    this.payloadBlocks = Math.ceil(metadata.virtualDiskSize / metadata.blockSize);
    const chunks = Math.ceil(this.payloadBlocks / this.chunkRatio);
    this.entryCount = metadata.hasParent
      ? chunks * (this.chunkRatio + 1)
      : this.payloadBlocks + Math.max(0, Math.floor((this.payloadBlocks - 1) / this.chunkRatio));
  }

  static async load(file: VhdxFile, region: Region, metadata: VhdxMetadata, reserved: readonly Region[]): Promise<BlockAllocationTable> {
    const table = new BlockAllocationTable(file, region, metadata);
    if (table.entryCount * ENTRY_BYTES > region.length) {
      throw file.corrupt(
        `VHDX BAT region of ${region.length} bytes cannot hold the ${table.entryCount} entries ` +
          `a ${metadata.virtualDiskSize}-byte disk needs`,
      );
    }
    if (file.sizeBytes > MAX_FILE_BYTES) throw file.unsupported(`a ${file.sizeBytes}-byte file is larger than any VHDX can be`);
    const used = new UsedUnits(file.sizeBytes);
    used.claim(0, HEADER_SECTION_SIZE);
    for (const structure of reserved) if (structure.length > 0) used.claim(structure.fileOffset, structure.length);
    await table.validateAll(used);
    return table;
  }

  batIndex(block: number): number {
    return block + Math.floor(block / this.chunkRatio);
  }

  /** The entry of payload block `block`. */
  async payload(block: number): Promise<BatEntry> {
    return this.entry(this.batIndex(block));
  }

  /**
   * The state of payload block `block` when its page is cached, else -1: lets a walk over long
   * runs of absent or zero blocks extend a run without a promise per block.
   */
  cachedState(block: number): number {
    const index = this.batIndex(block);
    const pageIndex = Math.floor(index / PAGE_ENTRIES);
    const page = this.cache.get(pageIndex);
    return page === undefined ? -1 : readLow(page, (index - pageIndex * PAGE_ENTRIES) * ENTRY_BYTES) & BAT_STATE_MASK;
  }

  /** The sector bitmap entry of the chunk holding payload block `block`. */
  async bitmapOf(block: number): Promise<BatEntry> {
    const chunk = Math.floor(block / this.chunkRatio);
    return this.entry(chunk * (this.chunkRatio + 1) + this.chunkRatio);
  }

  private async entry(index: number): Promise<BatEntry> {
    const pageIndex = Math.floor(index / PAGE_ENTRIES);
    const page = await this.page(pageIndex);
    const at = (index - pageIndex * PAGE_ENTRIES) * ENTRY_BYTES;
    const low = readLow(page, at);
    return { state: low & BAT_STATE_MASK, fileOffset: ((low >>> 20) + readHigh(page, at) * 4096) * MiB };
  }

  private async page(pageIndex: number): Promise<Buffer> {
    const hit = this.cache.get(pageIndex);
    if (hit !== undefined) {
      this.cache.delete(pageIndex);
      this.cache.set(pageIndex, hit);
      return hit;
    }
    const start = pageIndex * PAGE_ENTRIES;
    const count = Math.min(PAGE_ENTRIES, this.entryCount - start);
    const page = await this.file.read(count * ENTRY_BYTES, this.region.fileOffset + start * ENTRY_BYTES, 'VHDX BAT');
    this.remember(pageIndex, page);
    return page;
  }

  private remember(pageIndex: number, page: Buffer): void {
    this.cache.set(pageIndex, page);
    while (this.cache.size * PAGE_BYTES > CACHE_BYTES) {
      const oldest = this.cache.keys().next();
      if (oldest.done === true) break;
      this.cache.delete(oldest.value);
    }
  }

  private async validateAll(used: UsedUnits): Promise<void> {
    for (let start = 0; start < this.entryCount; start += VALIDATE_BATCH_ENTRIES) {
      const count = Math.min(VALIDATE_BATCH_ENTRIES, this.entryCount - start);
      const raw = await this.file.read(count * ENTRY_BYTES, this.region.fileOffset + start * ENTRY_BYTES, 'VHDX BAT');
      for (let index = 0; index < count; index++) this.check(start + index, raw, index * ENTRY_BYTES, used);
      for (let at = 0; at < count; at += PAGE_ENTRIES) {
        if (this.cache.size * PAGE_BYTES >= CACHE_BYTES) break;
        this.remember(
          (start + at) / PAGE_ENTRIES,
          Buffer.from(raw.subarray(at * ENTRY_BYTES, Math.min(count, at + PAGE_ENTRIES) * ENTRY_BYTES)),
        );
      }
    }
  }

  private check(index: number, raw: Buffer, at: number, used: UsedUnits): void {
    const low = readLow(raw, at);
    const state = low & BAT_STATE_MASK;
    const fileOffset = ((low >>> 20) + readHigh(raw, at) * 4096) * MiB;
    const isBitmap = index % (this.chunkRatio + 1) === this.chunkRatio;
    const block = index - Math.floor(index / (this.chunkRatio + 1));
    const what = isBitmap ? `VHDX sector bitmap entry ${index}` : `VHDX BAT entry ${index} (block ${block})`;
    if ((low & BAT_RESERVED_MASK) !== 0) throw this.file.corrupt(`${what} has reserved bits set`, { entry: index });
    let length: number;
    if (isBitmap) {
      const needed = this.chunkNeedsBitmap;
      this.chunkNeedsBitmap = false;
      if (state === SB_BLOCK_NOT_PRESENT) {
        if (needed) throw this.file.corrupt(`${what} is not present, but its chunk holds partially present blocks`, { entry: index });
        return;
      }
      if (state !== SB_BLOCK_PRESENT || !this.metadata.hasParent)
        throw this.file.corrupt(`${what} has state ${state}, invalid here`, { entry: index });
      length = SECTOR_BITMAP_BLOCK_SIZE;
    } else {
      if (block >= this.payloadBlocks) return;
      const name = STATE_NAMES[state];
      const valid = name !== undefined && (state !== PAYLOAD_BLOCK_PARTIALLY_PRESENT || this.metadata.hasParent);
      if (!valid) throw this.file.corrupt(`${what} has state ${state}, invalid here`, { entry: index });
      this.stateCounts[name] = (this.stateCounts[name] ?? 0) + 1;
      if (state !== PAYLOAD_BLOCK_FULLY_PRESENT && state !== PAYLOAD_BLOCK_PARTIALLY_PRESENT) return;
      if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) this.chunkNeedsBitmap = true;
      // The last block may end inside the file when the disk ends inside it.
      length = Math.min(this.metadata.blockSize, this.metadata.virtualDiskSize - block * this.metadata.blockSize);
      this.presentBytes += length;
    }
    if (fileOffset < HEADER_SECTION_SIZE || fileOffset + length > this.file.sizeBytes) {
      const place = fileOffset < HEADER_SECTION_SIZE ? 'inside the header section' : 'past the end of the file';
      throw this.file.corrupt(`${what} points to offset ${fileOffset}, ${place}`, { entry: index });
    }
    if (!used.claim(fileOffset, length)) {
      throw this.file.corrupt(`${what} at offset ${fileOffset} overlaps the log, BAT, metadata or another block`, { entry: index });
    }
  }
}
