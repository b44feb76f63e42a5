// One VHDX link as a read-only BlockDevice. Payload block n covers virtual bytes
// [n * blockSize, (n+1) * blockSize); its BAT state says where they are:
//
//   FULLY_PRESENT       the block at its file offset
//   PARTIALLY_PRESENT   sector by sector: bitmap bit 1 here, 0 in the parent (differencing only;
//                       bit 0 of byte 0 is the chunk's first logical sector)
//   NOT_PRESENT         the parent's bytes, or zeros without a parent
//   ZERO, UNDEFINED, UNMAPPED   zeros (qemu reads undefined and unmapped blocks as zeros too)
//
// Extents follow the same states: present data is `data`, ZERO/UNDEFINED/UNMAPPED blocks `zero`,
// blocks the chain holds nowhere `hole`.

import { type Extent, type ExtentKind, checkRange, pushExtent } from '../../lib/block-device.js';
import { SbmError } from '../../lib/errors.js';
import { type ChainLink, type ImageLayer, chainLayers } from '../../lib/image-layers.js';
import type { SbmWarning } from '../../lib/warnings.js';
import type { ImageReader } from '../image-format.js';
import { PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT, SB_BLOCK_PRESENT } from './constants.js';
import type { BlockAllocationTable } from './bat.js';
import { guidToText } from './guid.js';
import type { HeaderSection } from './header-section.js';
import type { VhdxMetadata } from './metadata.js';
import type { VhdxFile } from './vhdx-file.js';

const BITMAP_CACHE_ENTRIES = 64;

/** How a run reads: `here` at a file offset, from the `parent`, as zeros (`zero` state), or a `hole` (absent, no parent). */
type Run = { kind: 'here'; fileOffset: number } | { kind: 'parent' } | { kind: 'zero' } | { kind: 'hole' };
const PARENT: Run = { kind: 'parent' };
const ZERO: Run = { kind: 'zero' };
const HOLE: Run = { kind: 'hole' };

export class VhdxImage implements ImageReader {
  readonly formatName = 'vhdx';
  readonly readOnly = true;
  readonly preferredBlockSize = 64 * 1024;
  readonly minimumBlockSize = 512;
  readonly sizeBytes: number;
  private readonly bitmaps = new Map<number, Buffer>();
  private closed = false;

  constructor(
    readonly file: VhdxFile,
    readonly section: HeaderSection,
    readonly metadata: VhdxMetadata,
    readonly bat: BlockAllocationTable,
    readonly parent: ImageReader | undefined,
    readonly warnings: readonly SbmWarning[],
  ) {
    this.sizeBytes = metadata.virtualDiskSize;
  }

  get path(): string {
    return this.file.path;
  }

  get subformat(): string {
    if (this.metadata.hasParent) return 'differencing';
    return this.metadata.leaveBlocksAllocated ? 'fixed' : 'dynamic';
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
      if (run.kind === 'here') await this.file.readExact(view, run.fileOffset, 'VHDX payload block');
      else if (run.kind === 'parent') await this.readParent(position, view);
      else view.fill(0);
    });
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, length);
    const list: Extent[] = [];
    await this.walk(offset, length, async (position, runLength, run) => {
      if (run.kind !== 'parent') {
        pushExtent(list, { offset: position, length: runLength, kind: (run.kind === 'here' ? 'data' : run.kind) satisfies ExtentKind });
        return;
      }
      const inside = this.parentInside(position, runLength);
      if (inside > 0 && this.parent !== undefined)
        for (const extent of await this.parent.extents(position, inside)) pushExtent(list, extent);
      pushExtent(list, { offset: position + inside, length: runLength - inside, kind: 'hole' });
    });
    return list;
  }

  /** What a block of `state` reads as, when the whole block reads one way (not partially present). */
  private runOf(state: number): Run | undefined {
    if (state === PAYLOAD_BLOCK_FULLY_PRESENT || state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) return undefined;
    if (state === PAYLOAD_BLOCK_NOT_PRESENT) return this.parent === undefined ? HOLE : PARENT;
    return ZERO;
  }

  /** True when a block of `state` (-1: not cached, so unknown) continues the run `whole`. */
  private sameRun(state: number, whole: Run): boolean {
    return state >= 0 && this.runOf(state) === whole;
  }

  /**
   * Calls `visit` for each run of [offset, offset+length) in order. Consecutive blocks that read
   * the same way without data here (absent, zero) are one run, so a mostly empty 16 TiB disk is
   * walked without a call per block.
   */
  private async walk(offset: number, length: number, visit: (position: number, length: number, run: Run) => Promise<void>): Promise<void> {
    const { blockSize } = this.metadata;
    const end = offset + length;
    let position = offset;
    while (position < end) {
      const block = Math.floor(position / blockSize);
      const inBlock = position - block * blockSize;
      const entry = await this.bat.payload(block);
      const whole = this.runOf(entry.state);
      if (whole !== undefined) {
        let next = block + 1;
        while (next * blockSize < end && this.sameRun(this.bat.cachedState(next), whole)) next++;
        const runEnd = Math.min(end, next * blockSize);
        await visit(position, runEnd - position, whole);
        position = runEnd;
        continue;
      }
      const take = Math.min(end - position, blockSize - inBlock);
      if (entry.state === PAYLOAD_BLOCK_FULLY_PRESENT)
        await visit(position, take, { kind: 'here', fileOffset: entry.fileOffset + inBlock });
      else await this.walkPartial(block, inBlock, take, entry.fileOffset, visit);
      position += take;
    }
  }

  private async walkPartial(
    block: number,
    inBlock: number,
    length: number,
    blockOffset: number,
    visit: (position: number, length: number, run: Run) => Promise<void>,
  ): Promise<void> {
    const { blockSize, logicalSectorSize } = this.metadata;
    const bits = await this.sectorBits(block);
    const blockStart = block * blockSize;
    const end = inBlock + length;
    let at = inBlock;
    while (at < end) {
      const sector = Math.floor(at / logicalSectorSize);
      const present = bitOf(bits, sector);
      let next = sector + 1;
      while (next * logicalSectorSize < end && bitOf(bits, next) === present) next++;
      const runEnd = Math.min(end, next * logicalSectorSize);
      await visit(blockStart + at, runEnd - at, present ? { kind: 'here', fileOffset: blockOffset + at } : PARENT);
      at = runEnd;
    }
  }

  /** The sector bitmap bits of one payload block (one bit per logical sector). */
  private async sectorBits(block: number): Promise<Buffer> {
    const hit = this.bitmaps.get(block);
    if (hit !== undefined) return hit;
    const entry = await this.bat.bitmapOf(block);
    if (entry.state !== SB_BLOCK_PRESENT) {
      throw this.file.corrupt(`VHDX block ${block} is partially present but its chunk has no sector bitmap`, { block });
    }
    const bytesPerBlock = this.metadata.blockSize / this.metadata.logicalSectorSize / 8;
    const within = (block % this.bat.chunkRatio) * bytesPerBlock;
    const bits = await this.file.read(bytesPerBlock, entry.fileOffset + within, 'VHDX sector bitmap');
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
    return chainLayers(this, (device) => (device instanceof VhdxImage ? device.chainLink() : undefined));
  }

  private chainLink(): ChainLink {
    return {
      files: [this.path],
      // dataWriteGuid moves whenever the disk's content is written (VHDX spec 2.2.2)
      ids: { virtualDiskId: this.metadata.page83Data, dataWriteGuid: guidToText(this.section.header.dataWriteGuid) },
      parent: this.parent,
      walk: (offset, length, visit) => this.walk(offset, length, visit),
      assertOpen: () => this.assertOpen(),
    };
  }

  /** Links from this one down to the base (a non-VHDX parent ends the list). */
  chain(): Array<VhdxImage | ImageReader> {
    const links: Array<VhdxImage | ImageReader> = [this];
    let link: ImageReader | undefined = this.parent;
    while (link !== undefined) {
      links.push(link);
      link = link instanceof VhdxImage ? link.parent : undefined;
    }
    return links;
  }

  async details(): Promise<Record<string, unknown>> {
    const { header } = this.section;
    const m = this.metadata;
    const facts: Record<string, unknown> = {
      subformat: this.subformat,
      blockSize: m.blockSize,
      logicalSectorSize: m.logicalSectorSize,
      physicalSectorSize: m.physicalSectorSize,
      leaveBlocksAllocated: m.leaveBlocksAllocated,
      hasParent: m.hasParent,
      virtualDiskId: m.page83Data,
      dataWriteGuid: guidToText(header.dataWriteGuid),
      fileWriteGuid: guidToText(header.fileWriteGuid),
      headerSequenceNumber: header.sequenceNumber.toString(),
      currentHeader: this.section.headerIndex,
      creator: this.section.creator,
      logReplayed: replayedLogFacts(this.file),
      chunkRatio: this.bat.chunkRatio,
      blockStates: this.bat.stateCounts,
      allocatedBytes: this.bat.presentBytes,
      parentLocator: m.parentLocator === undefined ? undefined : Object.fromEntries(m.parentLocator.entries),
      chain:
        this.parent === undefined
          ? undefined
          : this.chain().map((link) => {
              // Readers of other formats may carry their path; VHDX links also name their subformat.
              const file = 'path' in link && typeof link.path === 'string' ? link.path : undefined;
              const described: Record<string, unknown> = {
                file,
                format: link.formatName,
                subformat: link instanceof VhdxImage ? link.subformat : undefined,
                virtualSize: link.sizeBytes,
              };
              for (const key of Object.keys(described)) if (described[key] === undefined) delete described[key];
              return described;
            }),
      warnings: this.warnings.length === 0 ? undefined : this.warnings.map((warning) => `${warning.code}: ${warning.message}`),
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
      await this.file.handle.close();
    } finally {
      await this.parent?.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private readOnlyError(): SbmError {
    return new SbmError('SBM_READ_ONLY', `VHDX ${this.path} is opened read-only`, { path: this.path });
  }

  private assertOpen(): void {
    if (this.closed) throw new SbmError('SBM_CLOSED', `VHDX ${this.path} is closed`, { path: this.path });
  }
}

function bitOf(bits: Buffer, sector: number): boolean {
  return (((bits[sector >>> 3] ?? 0) >>> (sector & 7)) & 1) === 1;
}

/** What `sbm info` says of a log replayed in memory (undefined when the log was empty). */
function replayedLogFacts(file: VhdxFile): string | undefined {
  const log = file.replayedLog;
  return log === undefined
    ? undefined
    : `in memory, ${log.entries} entr${log.entries === 1 ? 'y' : 'ies'} (head sequence ${log.headSequence})`;
}
