// One VDI as a read-only BlockDevice. Block i covers virtual bytes [i * cbBlock, (i+1) * cbBlock);
// its map entry says where they are:
//
//   0xFFFFFFFF (free)  zeros in a base image, the parent's bytes in a differencing one
//   0xFFFFFFFE (zero)  zeros, never the parent (how a diff records "zero over the parent")
//   p                  the file at offData + p * (cbBlock + cbBlockExtra) + cbBlockExtra
//
// Extents: allocated blocks are `data`, zero entries `zero`, free ones `hole` (or the parent's).

import { type Extent, checkRange, pushExtent } from '../../lib/block-device.js';
import { SbmError } from '../../lib/errors.js';
import { type ChainLink, type ImageLayer, chainLayers } from '../../lib/image-layers.js';
import type { SbmWarning } from '../../lib/warnings.js';
import type { ImageReader } from '../image-format.js';
import { VDI_IMAGE_BLOCK_FREE, VDI_IMAGE_BLOCK_ZERO, VDI_SECTOR_SIZE } from './constants.js';
import { vdiUuidText } from './layouts.js';
import type { VdiFile } from './vdi-file.js';
import type { VdiHeader } from './vdi-header.js';

type Run = { kind: 'here'; fileOffset: number } | { kind: 'parent' } | { kind: 'zero' } | { kind: 'hole' };

export interface VdiParts {
  readonly file: VdiFile;
  readonly header: VdiHeader;
  readonly map: Uint32Array;
  readonly allocatedBlocks: number;
  readonly parent: VdiImage | undefined;
  readonly warnings: readonly SbmWarning[];
}

export class VdiImage implements ImageReader {
  readonly formatName = 'vdi';
  readonly readOnly = true;
  readonly preferredBlockSize = 64 * 1024;
  readonly minimumBlockSize = VDI_SECTOR_SIZE;
  readonly sizeBytes: number;
  private closed = false;

  constructor(readonly parts: VdiParts) {
    this.sizeBytes = parts.header.sizeBytes;
  }

  get path(): string {
    return this.parts.file.path;
  }

  get parent(): VdiImage | undefined {
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
      if (run.kind === 'here') await this.parts.file.readExact(view, run.fileOffset, 'VDI block');
      else if (run.kind === 'parent') await this.readParent(position, view);
      else view.fill(0);
    });
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, length);
    const list: Extent[] = [];
    await this.walk(offset, length, async (position, runLength, run) => {
      if (run.kind !== 'parent')
        return pushExtent(list, { offset: position, length: runLength, kind: run.kind === 'here' ? 'data' : run.kind });
      const inside = this.parentInside(position, runLength);
      if (inside > 0 && this.parent !== undefined)
        for (const extent of await this.parent.extents(position, inside)) pushExtent(list, extent);
      pushExtent(list, { offset: position + inside, length: runLength - inside, kind: 'hole' });
    });
    return list;
  }

  /** The chain as `sbm sync` reads it, top first (a parent of another format brings its own layers). */
  layers(): ImageLayer[] {
    return chainLayers(this, (device) => (device instanceof VdiImage ? device.chainLink() : undefined));
  }

  private chainLink(): ChainLink {
    return {
      files: [this.path],
      // uuidModify moves with every write
      ids: {
        uuid: vdiUuidText(this.parts.header.values.uuidCreate),
        modified: vdiUuidText(this.parts.header.values.uuidModify),
        ...(this.parent === undefined ? {} : { parentUuid: vdiUuidText(this.parts.header.values.uuidLinkage) }),
      },
      parent: this.parent,
      walk: (offset, length, visit) => this.walk(offset, length, visit),
      assertOpen: () => this.assertOpen(),
    };
  }

  private async walk(offset: number, length: number, visit: (position: number, length: number, run: Run) => Promise<void>): Promise<void> {
    const { cbBlock, cbBlockExtra, offData } = this.parts.header.values;
    const free: Run = this.parent === undefined ? { kind: 'hole' } : { kind: 'parent' };
    const end = offset + length;
    let position = offset;
    while (position < end) {
      const block = Math.floor(position / cbBlock);
      const inBlock = position - block * cbBlock;
      let take = Math.min(end - position, cbBlock - inBlock);
      const entry = this.parts.map[block] as number;
      if (entry === VDI_IMAGE_BLOCK_FREE || entry === VDI_IMAGE_BLOCK_ZERO) {
        // A run of free (or zero) blocks is one visit: a large empty disk maps in one step.
        let next = block + 1;
        while (position + take < end && this.parts.map[next] === entry) {
          take = Math.min(end - position, (next + 1) * cbBlock - position);
          next++;
        }
        await visit(position, take, entry === VDI_IMAGE_BLOCK_FREE ? free : { kind: 'zero' });
      } else await visit(position, take, { kind: 'here', fileOffset: offData + entry * (cbBlock + cbBlockExtra) + cbBlockExtra + inBlock });
      position += take;
    }
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

  async details(): Promise<Record<string, unknown>> {
    const { header, allocatedBlocks, warnings } = this.parts;
    const values = header.values;
    const chain: Array<Record<string, unknown>> = [];
    for (let link = this.parent; link !== undefined; link = link.parent)
      chain.push({ file: link.path, subformat: link.parts.header.subformat, uuid: vdiUuidText(link.parts.header.values.uuidCreate) });
    const facts: Record<string, unknown> = {
      subformat: header.subformat,
      headerSize: values.cbHeader,
      blockSize: values.cbBlock,
      blockExtra: values.cbBlockExtra,
      blocks: values.cBlocks,
      allocatedBlocks,
      allocatedBytes: allocatedBlocks * values.cbBlock,
      uuid: vdiUuidText(values.uuidCreate),
      modificationUuid: vdiUuidText(values.uuidModify),
      parentUuid: header.subformat === 'differencing' ? vdiUuidText(values.uuidLinkage) : undefined,
      chain: chain.length === 0 ? undefined : chain,
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
    return new SbmError('SBM_READ_ONLY', `VDI ${this.path} is opened read-only`, { path: this.path });
  }

  private assertOpen(): void {
    if (this.closed) throw new SbmError('SBM_CLOSED', `VDI ${this.path} is closed`, { path: this.path });
  }
}
