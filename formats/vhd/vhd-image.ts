// One VHD as a read-only BlockDevice.
//
//   fixed         virtual byte x is file byte x
//   dynamic       block n = bytes [n * blockSize, (n+1) * blockSize): absent (BAT 0xFFFFFFFF)
//                 reads as zeros; present, sector by sector: bitmap bit 1 = the block's data,
//                 bit 0 = zeros (the spec's rule: a dynamic disk's unwritten sectors are zero)
//   differencing  as dynamic, but absent blocks and bit-0 sectors read from the parent
//
// Bitmaps: sector i of a block is bit (0x80 >> (i & 7)) of byte i >> 3, most significant first.
// Extents follow the same rules: sectors here are `data`, bit-0 sectors of a dynamic disk
// `zero`, absent blocks `hole` (or whatever the parent holds there).

import { type Extent, checkRange, pushExtent } from '../../lib/block-device.js';
import { SbmError } from '../../lib/errors.js';
import { type ChainLink, type ImageLayer, chainLayers } from '../../lib/image-layers.js';
import { allocatedRuns } from '../../lib/fs/sparse-seek.js';
import type { SbmWarning } from '../../lib/warnings.js';
import type { ImageReader } from '../image-format.js';
import { VHD_BAT_UNUSED, VHD_SECTOR_SIZE } from './constants.js';
import type { VhdDynamicDisk } from './dynamic-header.js';
import type { VhdFile } from './vhd-file.js';
import type { VhdFooter } from './vhd-footer.js';

const BITMAP_CACHE_ENTRIES = 64;

type Run = { kind: 'here'; fileOffset: number } | { kind: 'parent' } | { kind: 'zero' };

export interface VhdParts {
  readonly file: VhdFile;
  readonly footer: VhdFooter;
  readonly dynamic: VhdDynamicDisk | undefined;
  readonly parent: ImageReader | undefined;
  readonly parentPath: string | undefined;
  readonly warnings: readonly SbmWarning[];
}

export class VhdImage implements ImageReader {
  readonly formatName = 'vhd';
  readonly readOnly = true;
  readonly preferredBlockSize = 64 * 1024;
  readonly minimumBlockSize = VHD_SECTOR_SIZE;
  readonly sizeBytes: number;
  private readonly bitmaps = new Map<number, Buffer>();
  private closed = false;

  constructor(readonly parts: VhdParts) {
    this.sizeBytes = parts.footer.sizeBytes;
  }

  get path(): string {
    return this.parts.file.path;
  }

  get parent(): ImageReader | undefined {
    return this.parts.parent;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, target.length);
    await this.walk(offset, target.length, async (position, length, run) => {
      const view = target.subarray(position - offset, position - offset + length);
      if (run.kind === 'here') await this.parts.file.readExact(view, run.fileOffset, 'VHD data');
      else if (run.kind === 'parent') await this.readParent(position, view);
      else view.fill(0);
    });
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, length);
    if (this.parts.dynamic === undefined) return this.fixedExtents(offset, length);
    const list: Extent[] = [];
    await this.walk(offset, length, async (position, runLength, run) => {
      if (run.kind === 'here') return pushExtent(list, { offset: position, length: runLength, kind: 'data' });
      if (run.kind === 'zero')
        return pushExtent(list, { offset: position, length: runLength, kind: this.isAbsent(position) ? 'hole' : 'zero' });
      const inside = this.parentInside(position, runLength);
      if (inside > 0 && this.parent !== undefined)
        for (const extent of await this.parent.extents(position, inside)) pushExtent(list, extent);
      pushExtent(list, { offset: position + inside, length: runLength - inside, kind: 'hole' });
    });
    return list;
  }

  /** A fixed disk's extents are its file's own: qemu-img writes it sparse, and holes read as zeros. */
  private fixedExtents(offset: number, length: number): Extent[] {
    const list: Extent[] = [];
    let position = offset;
    for (const run of allocatedRuns(this.parts.file.handle.fd, offset, offset + length)) {
      pushExtent(list, { offset: position, length: run.offset - position, kind: 'hole' });
      pushExtent(list, { offset: run.offset, length: run.length, kind: 'data' });
      position = run.offset + run.length;
    }
    pushExtent(list, { offset: position, length: offset + length - position, kind: 'hole' });
    return list;
  }

  private isAbsent(position: number): boolean {
    const dynamic = this.parts.dynamic;
    return dynamic !== undefined && dynamic.bat[Math.floor(position / dynamic.blockSize)] === VHD_BAT_UNUSED;
  }

  /** Calls `visit` for each run of [offset, offset+length) in order. */
  private async walk(offset: number, length: number, visit: (position: number, length: number, run: Run) => Promise<void>): Promise<void> {
    const dynamic = this.parts.dynamic;
    if (dynamic === undefined) return visit(offset, length, { kind: 'here', fileOffset: offset });
    const absent: Run = this.parts.footer.subformat === 'differencing' ? { kind: 'parent' } : { kind: 'zero' };
    const end = offset + length;
    let position = offset;
    while (position < end) {
      const block = Math.floor(position / dynamic.blockSize);
      const inBlock = position - block * dynamic.blockSize;
      let take = Math.min(end - position, dynamic.blockSize - inBlock);
      const entry = dynamic.bat[block] as number;
      if (entry === VHD_BAT_UNUSED) {
        // A run of absent blocks is one visit: a large empty disk maps in one step, not per block.
        let next = block + 1;
        while (position + take < end && dynamic.bat[next] === VHD_BAT_UNUSED) {
          take = Math.min(end - position, (next + 1) * dynamic.blockSize - position);
          next++;
        }
        await visit(position, take, absent);
      } else await this.walkBlock(block, entry * VHD_SECTOR_SIZE, inBlock, take, absent, visit);
      position += take;
    }
  }

  /** Runs of one present block, split where its sector bitmap changes. */
  private async walkBlock(
    block: number,
    blockStart: number,
    inBlock: number,
    length: number,
    clear: Run,
    visit: (position: number, length: number, run: Run) => Promise<void>,
  ): Promise<void> {
    const dynamic = this.parts.dynamic as VhdDynamicDisk;
    const bits = await this.sectorBitmap(block, blockStart);
    const dataStart = blockStart + dynamic.bitmapBytes;
    const virtualStart = block * dynamic.blockSize;
    const end = inBlock + length;
    let at = inBlock;
    while (at < end) {
      const sector = Math.floor(at / VHD_SECTOR_SIZE);
      const present = bitOf(bits, sector);
      let next = sector + 1;
      while (next * VHD_SECTOR_SIZE < end && bitOf(bits, next) === present) next++;
      const runEnd = Math.min(end, next * VHD_SECTOR_SIZE);
      await visit(virtualStart + at, runEnd - at, present ? { kind: 'here', fileOffset: dataStart + at } : clear);
      at = runEnd;
    }
  }

  private async sectorBitmap(block: number, blockStart: number): Promise<Buffer> {
    const hit = this.bitmaps.get(block);
    if (hit !== undefined) return hit;
    const bits = await this.parts.file.read((this.parts.dynamic as VhdDynamicDisk).bitmapBytes, blockStart, 'VHD sector bitmap');
    if (this.bitmaps.size >= BITMAP_CACHE_ENTRIES) {
      const oldest = this.bitmaps.keys().next();
      if (oldest.done !== true) this.bitmaps.delete(oldest.value);
    }
    this.bitmaps.set(block, bits);
    return bits;
  }

  private parentInside(offset: number, length: number): number {
    return this.parent === undefined ? 0 : Math.max(0, Math.min(length, this.parent.sizeBytes - offset));
  }

  /** Reads from the parent; past the parent's end reads zeros. */
  private async readParent(offset: number, target: Uint8Array): Promise<void> {
    const inside = this.parentInside(offset, target.length);
    if (inside > 0 && this.parent !== undefined) await this.parent.readInto(offset, target.subarray(0, inside));
    target.fill(0, inside);
  }

  /** The chain as `sbm sync` reads it, top first (a parent of another format brings its own layers). */
  layers(): ImageLayer[] {
    return chainLayers(this, (device) => (device instanceof VhdImage ? device.chainLink() : undefined));
  }

  private chainLink(): ChainLink {
    return {
      files: [this.path],
      ids: this.parts.parentPath === undefined ? {} : { parent: this.parts.parentPath },
      parent: this.parent,
      walk: (offset, length, visit) => this.walk(offset, length, visit),
      assertOpen: () => this.assertOpen(),
    };
  }

  async details(): Promise<Record<string, unknown>> {
    const { footer, dynamic, parentPath, warnings } = this.parts;
    const values = footer.values;
    const facts: Record<string, unknown> = {
      subformat: footer.subformat,
      creatorApplication: footer.creatorApplication.replace(/\0/g, '\\0'),
      creatorVersion: `${values.creatorVersion >>> 16}.${values.creatorVersion & 0xffff}`,
      sizeFrom: footer.sizeFrom,
      currentSize: values.currentSize.toString(),
      geometry: `${values.cylinders}/${values.heads}/${values.sectorsPerTrack}`,
      uniqueId: values.uniqueId.toString('hex'),
      blockSize: dynamic?.blockSize,
      allocatedBlocks: dynamic?.allocatedBlocks,
      allocatedBytes: dynamic === undefined ? footer.sizeBytes : dynamic.allocatedBlocks * dynamic.blockSize,
      parentUniqueId: footer.subformat === 'differencing' ? dynamic?.header.parentUniqueId.toString('hex') : undefined,
      parent: parentPath,
      parentFormat: this.parent?.formatName,
      warnings: warnings.length === 0 ? undefined : warnings.map((warning) => `${warning.code}: ${warning.message}`),
    };
    for (const key of Object.keys(facts)) if (facts[key] === undefined) delete facts[key];
    return facts;
  }

  async write(): Promise<void> {
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
    try {
      await this.parts.file.handle.close();
    } finally {
      await this.parent?.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private readOnlyError(): SbmError {
    return new SbmError('SBM_READ_ONLY', `VHD ${this.path} is opened read-only`, { path: this.path });
  }

  private assertOpen(): void {
    if (this.closed) throw new SbmError('SBM_CLOSED', `VHD ${this.path} is closed`, { path: this.path });
  }
}

function bitOf(bits: Buffer, sector: number): boolean {
  return (((bits[sector >>> 3] ?? 0) >>> (7 - (sector & 7))) & 1) === 1;
}
