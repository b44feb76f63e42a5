// A Parallels disk as one read-only BlockDevice: storages laid end to end (a split disk has
// several, in Start order), each a stack of layers, the active snapshot on top. A cluster is read
// from the first layer, top down, whose BAT holds it; in none, it reads as zeros (a hole).
//
//   virtual [0 ........ storage 0 ........ | ....... storage 1 ....... )
//              top layer   (.hds, newest)      top layer
//              parent      (.hds)              parent
//              root        (.hds or plain)     root

import { type Extent, checkRange, pushExtent } from '../../lib/block-device.js';
import { SbmError } from '../../lib/errors.js';
import type { ImageLayer } from '../../lib/image-layers.js';
import type { ImageReader } from '../image-format.js';
import { SECTOR_SIZE } from './constants.js';
import { ExpandingLayer, type ParallelsLayer } from './expanding-layer.js';

export interface StorageLayers {
  readonly startBytes: number;
  readonly endBytes: number;
  /** Step of the BAT lookups (the storage's Blocksize). */
  readonly blockBytes: number;
  /** The top layer first. */
  readonly layers: readonly ParallelsLayer[];
}

interface Run {
  offset: number;
  length: number;
  layer: ParallelsLayer | undefined;
  fileOffset: number;
}

export interface ParallelsDiskParts {
  readonly path: string;
  readonly sizeBytes: number;
  readonly storages: readonly StorageLayers[];
  /** Layer GUIDs, top first (empty for a single .hds opened directly). */
  readonly chain: readonly string[];
  /** Facts of the descriptor or VM for `sbm info`. */
  readonly facts: Record<string, unknown>;
}

export class ParallelsDisk implements ImageReader {
  readonly formatName = 'parallels';
  readonly readOnly = true;
  readonly preferredBlockSize = 64 * 1024;
  readonly minimumBlockSize = SECTOR_SIZE;
  readonly sizeBytes: number;
  private closed = false;

  constructor(readonly parts: ParallelsDiskParts) {
    this.sizeBytes = parts.sizeBytes;
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
    for (const run of this.runs(offset, target.length)) {
      const view = target.subarray(run.offset - offset, run.offset - offset + run.length);
      if (run.layer === undefined) view.fill(0);
      else await run.layer.file.readExact(view, run.fileOffset, 'Parallels cluster');
    }
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.assertOpen();
    checkRange(this.sizeBytes, offset, length);
    const list: Extent[] = [];
    for (const run of this.runs(offset, length))
      pushExtent(list, { offset: run.offset, length: run.length, kind: run.layer === undefined ? 'hole' : 'data' });
    return list;
  }

  /**
   * The chain as `sbm sync` reads it: level k is layer k (top first) of every storage, named by
   * its snapshot GUID; an image marked in use (`Ynot`) is open for writing by Parallels.
   */
  layers(): ImageLayer[] {
    const levels = Math.min(...this.parts.storages.map((storage) => storage.layers.length));
    return Array.from({ length: Number.isFinite(levels) ? levels : 0 }, (_, level): ImageLayer => {
      const layers = this.parts.storages.map((storage) => storage.layers[level] as ParallelsLayer);
      const guid = this.parts.chain[level];
      const inUse = layers.find((layer) => layer instanceof ExpandingLayer && layer.inUse);
      return {
        files: layers.map((layer) => layer.path),
        ids: guid === undefined ? {} : ({ guid: `{${guid}}` } as Record<string, string>),
        ...(inUse === undefined ? {} : { openForWriting: { path: inUse.path, hypervisor: 'Parallels Desktop' } }),
        allocated: async (offset, length) => this.levelExtents(level, offset, length),
      };
    });
  }

  /** Runs layer `level` of each storage holds itself. */
  private levelExtents(level: number, offset: number, length: number): Extent[] {
    this.assertOpen();
    const list: Extent[] = [];
    const end = Math.min(offset + length, this.sizeBytes);
    for (const storage of this.parts.storages) {
      const layer = storage.layers[level];
      let position = Math.max(offset, storage.startBytes);
      const stop = Math.min(end, storage.endBytes);
      while (layer !== undefined && position < stop) {
        const location = layer.locate(position - storage.startBytes, stop - position);
        if (location.fileOffset !== undefined) pushExtent(list, { offset: position, length: location.length, kind: 'data' });
        position += location.length;
      }
    }
    return list;
  }

  /** Covers [offset, offset+length) with runs, merged where one file read serves them. */
  private runs(offset: number, length: number): Run[] {
    const runs: Run[] = [];
    const end = offset + length;
    let position = offset;
    for (const storage of this.parts.storages) {
      if (position >= end) break;
      if (position >= storage.endBytes) continue;
      while (position < Math.min(end, storage.endBytes)) {
        const relative = position - storage.startBytes;
        const step = Math.min(end, storage.endBytes) - position;
        const inBlock = Math.min(step, storage.blockBytes - (relative % storage.blockBytes));
        let found: Run = { offset: position, length: inBlock, layer: undefined, fileOffset: 0 };
        for (const layer of storage.layers) {
          const location = layer.locate(relative, inBlock);
          if (location.fileOffset !== undefined) {
            found = { offset: position, length: location.length, layer, fileOffset: location.fileOffset };
            break;
          }
        }
        const last = runs[runs.length - 1];
        const joins =
          last !== undefined &&
          last.layer === found.layer &&
          (found.layer === undefined || last.fileOffset + last.length === found.fileOffset);
        if (joins) last.length += found.length;
        else runs.push(found);
        position += found.length;
      }
    }
    return runs;
  }

  async details(): Promise<Record<string, unknown>> {
    const first = this.parts.storages[0]?.layers[0];
    const clusterSizeBytes = first instanceof ExpandingLayer ? first.clusterBytes : undefined;
    const inUse = this.parts.storages.some((storage) => storage.layers.some((layer) => layer instanceof ExpandingLayer && layer.inUse));
    return {
      ...this.parts.facts,
      ...(clusterSizeBytes === undefined ? {} : { clusterSizeBytes }),
      inUse,
      snapshotChain: this.parts.chain.map((guid) => `{${guid}}`),
      storages: this.parts.storages.map((storage) => ({
        startBytes: storage.startBytes,
        endBytes: storage.endBytes,
        layers: storage.layers.map((layer) => layer.describe()),
      })),
    };
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
    for (const storage of this.parts.storages) for (const layer of storage.layers) await layer.file.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private readOnlyError(): SbmError {
    return new SbmError('SBM_READ_ONLY', `Parallels disk ${this.path} is opened read-only`, { path: this.path });
  }

  private assertOpen(): void {
    if (this.closed) throw new SbmError('SBM_CLOSED', `Parallels disk ${this.path} is closed`, { path: this.path });
  }
}
