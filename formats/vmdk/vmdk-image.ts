// One VMDK link as a read-only BlockDevice: the descriptor's extents laid end to end in virtual
// space, plus an optional parent link. A grain the link does not hold (`absent`) is read from the
// parent, or as zeros at the base of the chain; zeroed grains read as zeros without asking.

import { type Extent, type WriteOptions, checkRange, pushExtent } from '../../lib/block-device.js';
import { SbmError } from '../../lib/errors.js';
import type { ImageLayer } from '../../lib/image-layers.js';
import type { SbmWarning } from '../../lib/warnings.js';
import type { ImageReader } from '../image-format.js';
import { NO_PARENT_CID } from './constants.js';
import type { Descriptor } from './descriptor.js';
import type { VmdkExtent } from './vmdk-extent.js';

export interface PlacedExtent {
  /** Virtual byte offset where the extent starts. */
  readonly start: number;
  readonly extent: VmdkExtent;
}

const hex = (value: number | undefined): string | undefined => (value === undefined ? undefined : value.toString(16).padStart(8, '0'));

function fileOf(extent: VmdkExtent): string[] {
  const file = extent.describe().file;
  return typeof file === 'string' ? [file] : [];
}

export class VmdkImage implements ImageReader {
  readonly formatName = 'vmdk';
  readonly readOnly = true;
  readonly preferredBlockSize = 64 * 1024;
  readonly minimumBlockSize = 512;
  readonly sizeBytes: number;
  private closed = false;

  constructor(
    /** The file the link was opened from (descriptor, or the monolithic file). */
    readonly path: string,
    readonly descriptor: Descriptor,
    private readonly placed: readonly PlacedExtent[],
    readonly parent: VmdkImage | undefined,
    /** Warnings raised while opening this link and its parents, for details(). */
    readonly warnings: readonly SbmWarning[],
  ) {
    const last = placed[placed.length - 1];
    this.sizeBytes = last === undefined ? 0 : last.start + last.extent.sizeBytes;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, target.length);
    await this.readLink(offset, target);
  }

  private async readLink(offset: number, target: Uint8Array): Promise<void> {
    const end = offset + target.length;
    for (const { start, extent } of this.placed) {
      const from = Math.max(offset, start);
      const to = Math.min(end, start + extent.sizeBytes);
      if (from >= to) continue;
      const view = target.subarray(from - offset, to - offset);
      await extent.read(from - start, view, (relative, sub) => this.readParent(start + relative, sub));
    }
  }

  /** Reads from the parent link; past the parent's end (or with no parent) reads zeros. */
  private async readParent(offset: number, target: Uint8Array): Promise<void> {
    const parent = this.parent;
    const inside = parent === undefined ? 0 : Math.max(0, Math.min(target.length, parent.sizeBytes - offset));
    if (parent !== undefined && inside > 0) await parent.readLink(offset, target.subarray(0, inside));
    target.fill(0, inside);
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, length);
    const list: Extent[] = [];
    await this.linkExtents(offset, length, list);
    return list;
  }

  private async linkExtents(offset: number, length: number, list: Extent[]): Promise<void> {
    const end = offset + length;
    for (const { start, extent } of this.placed) {
      const from = Math.max(offset, start);
      const to = Math.min(end, start + extent.sizeBytes);
      if (from >= to) continue;
      for (const segment of await extent.segments(from - start, to - from)) {
        const virtual = start + segment.offset;
        if (segment.kind !== 'absent') {
          pushExtent(list, { offset: virtual, length: segment.length, kind: segment.kind });
          continue;
        }
        const parent = this.parent;
        const inside = parent === undefined ? 0 : Math.max(0, Math.min(segment.length, parent.sizeBytes - virtual));
        if (parent !== undefined && inside > 0) await parent.linkExtents(virtual, inside, list);
        pushExtent(list, { offset: virtual + inside, length: segment.length - inside, kind: 'hole' });
      }
    }
  }

  /** Links from this one down to the base. */
  chain(): VmdkImage[] {
    const links: VmdkImage[] = [];
    for (let link: VmdkImage | undefined = this; link !== undefined; link = link.parent) links.push(link);
    return links;
  }

  /** The chain as `sbm sync` reads it: each link's files, CIDs and own grains. */
  layers(): ImageLayer[] {
    return this.chain().map((link) => ({
      files: [...new Set([link.path, ...link.placed.flatMap(({ extent }) => fileOf(extent))])],
      ids: {
        cid: hex(link.descriptor.cid) ?? '',
        ...(link.descriptor.parentCid === NO_PARENT_CID ? {} : { parentCid: hex(link.descriptor.parentCid) ?? '' }),
      },
      allocated: (offset, length) => link.ownExtents(offset, length),
    }));
  }

  /** Runs this link answers itself (not absent), ignoring its parent. */
  private async ownExtents(offset: number, length: number): Promise<Extent[]> {
    this.assertOpen();
    const list: Extent[] = [];
    const end = Math.min(offset + length, this.sizeBytes);
    for (const { start, extent } of this.placed) {
      const from = Math.max(offset, start);
      const to = Math.min(end, start + extent.sizeBytes);
      if (from >= to) continue;
      for (const segment of await extent.segments(from - start, to - from)) {
        if (segment.kind === 'absent') continue;
        pushExtent(list, { offset: start + segment.offset, length: segment.length, kind: segment.kind });
      }
    }
    return list;
  }

  allocatedBytes(): number {
    return this.placed.reduce((sum, { extent }) => sum + extent.allocatedBytes(), 0);
  }

  async details(): Promise<Record<string, unknown>> {
    const d = this.descriptor;
    const facts: Record<string, unknown> = {
      createType: d.createType,
      capacity: this.sizeBytes,
      cid: hex(d.cid),
      parentCid: d.parentCid === NO_PARENT_CID ? undefined : hex(d.parentCid),
      extents: this.placed.map(({ start, extent }) => ({ virtualOffset: start, ...extent.describe() })),
      chain: this.chain().map((link) => ({
        file: link.path,
        createType: link.descriptor.createType,
        cid: hex(link.descriptor.cid),
        parentCid: link.descriptor.parentCid === NO_PARENT_CID ? undefined : hex(link.descriptor.parentCid),
        parentFileNameHint: link.descriptor.parentFileNameHint,
        allocatedBytes: link.allocatedBytes(),
      })),
      allocatedBytes: this.allocatedBytes(),
      adapterType: d.ddb.adaptertype,
      warnings: this.warnings.map((warning) => `${warning.code}: ${warning.message}`),
    };
    // Leave out facts that do not apply (no parent, no adapter type) instead of printing "undefined".
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
    for (const { extent } of this.placed) await extent.close();
    await this.parent?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private readOnlyError(): SbmError {
    return new SbmError('SBM_READ_ONLY', `VMDK ${this.path} is opened read-only`, { path: this.path });
  }

  private assertOpen(): void {
    if (this.closed) throw new SbmError('SBM_CLOSED', `VMDK ${this.path} is closed`, { path: this.path });
  }
}
