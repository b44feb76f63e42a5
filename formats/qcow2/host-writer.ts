// The body of a qcow2 file being exported, written strictly front to back: data clusters,
// compressed streams packed back to back, L2 tables, and each refcount block as soon as it can no
// longer change; the refcount table and the last refcount blocks close the file. Everything is
// referenced as it is placed, so the refcounts match what `qemu-img check` recounts from the
// metadata: 1 for every metadata and data cluster, and for compressed data one per stream that
// touches a cluster.
//
//   [header | L1 ...]  written by the caller, referenced here first
//   data | L2 | refblock | data | compressed streams | data | L2 | ...   (appended in order)
//   refcount table | last refcount blocks                                 (finish)
//
// Appends only queue bytes; flush() hands the queue to one positional write and returns once the
// previous write is done, so the next batch is read (and compressed) while this one is written.
// Memory: two batches, whatever the disk size.

import type { FileHandle } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { writeFully } from '../../lib/fs/read-fully.js';
import { QCOW_MAX_REFTABLE_SIZE_BYTES } from './constants.js';
import { RefcountBlocks } from './refcount-blocks.js';
import { QCOW2_TABLE_ENTRY } from './write-layouts.js';

const writeEntry = QCOW2_TABLE_ENTRY.writer('value');

export interface RefcountTablePlace {
  readonly offset: number;
  readonly clusters: number;
}

export class HostWriter {
  readonly #refcounts: RefcountBlocks;
  /** Host offset of each written refcount block, by block index (the refcount table's entries). */
  readonly #blockOffsets: number[] = [];
  #cursor: number;
  #queue: Buffer[] = [];
  #queueStart: number;
  #queueBytes = 0;
  #bytesWritten = 0;
  #inFlight: Promise<void> | undefined;
  #failure: { error: unknown } | undefined;

  /** `leadingClusters` (header and L1) are already placed at the start of the file by the caller. */
  constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
    private readonly clusterSize: number,
    leadingClusters: number,
  ) {
    this.#refcounts = new RefcountBlocks(clusterSize);
    this.#refcounts.addRange(0, leadingClusters - 1);
    this.#cursor = leadingClusters * clusterSize;
    this.#queueStart = this.#cursor;
  }

  /** Bytes handed to the file so far by this writer. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** Appends whole clusters at the next cluster boundary (refcount 1 each); returns the first one's host offset. */
  appendClusters(data: Buffer): number {
    this.#alignToCluster();
    const offset = this.#cursor;
    const clusters = Math.ceil(data.length / this.clusterSize);
    this.#push(data);
    const tail = clusters * this.clusterSize - data.length;
    if (tail > 0) this.#push(Buffer.alloc(tail));
    this.#reference(offset, clusters * this.clusterSize);
    return offset;
  }

  /** Appends one compressed stream right after the previous bytes; returns its host byte offset. */
  appendCompressed(stream: Buffer): number {
    const offset = this.#cursor;
    this.#push(stream);
    this.#reference(offset, stream.length);
    return offset;
  }

  /** Starts writing what is queued, after the write started by the previous flush has finished. */
  async flush(): Promise<void> {
    await this.#settle();
    if (this.#queueBytes === 0) return;
    const data = this.#queue.length === 1 ? (this.#queue[0] as Buffer) : Buffer.concat(this.#queue, this.#queueBytes);
    const position = this.#queueStart;
    this.#queue = [];
    this.#queueStart += this.#queueBytes;
    this.#queueBytes = 0;
    // Caught here and rethrown by the next flush: a rejection nobody awaits yet must not go unhandled.
    this.#inFlight = writeFully(this.handle, data, position).then(
      () => {
        this.#bytesWritten += data.length;
      },
      (error: unknown) => {
        this.#failure = { error };
      },
    );
  }

  /** Waits for the write in flight and rethrows its failure. */
  async #settle(): Promise<void> {
    await this.#inFlight;
    this.#inFlight = undefined;
    if (this.#failure !== undefined) throw fromSystemError(this.#failure.error, 'cannot write qcow2', this.path);
  }

  /**
   * Places the refcount table and the refcount blocks not yet written at the end of the file,
   * sized by fixed point (they count themselves), writes everything and returns where the table is.
   */
  async finish(): Promise<RefcountTablePlace> {
    this.#alignToCluster();
    const firstCluster = this.#cursor / this.clusterSize;
    const firstBlock = this.#refcounts.currentBlockIndex;
    let blocks = firstBlock + 1;
    let tableClusters: number;
    for (;;) {
      tableClusters = Math.ceil((blocks * QCOW2_TABLE_ENTRY.sizeBytes) / this.clusterSize);
      const endCluster = firstCluster + tableClusters + (blocks - firstBlock);
      const needed = Math.ceil(endCluster / this.#refcounts.entriesPerBlock);
      if (needed <= blocks) break;
      blocks = needed;
    }
    if (tableClusters * this.clusterSize > QCOW_MAX_REFTABLE_SIZE_BYTES) {
      throw new SbmError('SBM_BAD_SIZE', `${this.path}: the qcow2 refcount table would pass qemu's 8 MiB limit`, { path: this.path });
    }
    const tableOffset = this.#cursor;
    this.#refcounts.addRange(firstCluster, firstCluster + tableClusters + (blocks - firstBlock) - 1);
    const last = this.#refcounts.finishAll();
    if (last.length !== blocks - firstBlock) throw new SbmError('SBM_INTERNAL', 'qcow2 writer: refcount blocks miscounted');
    last.forEach((finished, index) => {
      this.#blockOffsets[finished.blockIndex] = tableOffset + (tableClusters + index) * this.clusterSize;
    });
    const table = Buffer.alloc(tableClusters * this.clusterSize);
    this.#blockOffsets.forEach((offset, blockIndex) => {
      writeEntry(table, blockIndex * QCOW2_TABLE_ENTRY.sizeBytes, BigInt(offset));
    });
    this.#push(table);
    for (const finished of last) this.#push(finished.block);
    await this.flush();
    await this.#settle();
    return { offset: tableOffset, clusters: tableClusters };
  }

  #alignToCluster(): void {
    const pad = (this.clusterSize - (this.#cursor % this.clusterSize)) % this.clusterSize;
    if (pad > 0) this.#push(Buffer.alloc(pad));
  }

  #push(data: Buffer): void {
    this.#queue.push(data);
    this.#queueBytes += data.length;
    this.#cursor += data.length;
  }

  /** References every cluster of [offset, offset+length), then appends the refcount blocks that became final. */
  #reference(offset: number, length: number): void {
    this.#refcounts.addRange(Math.floor(offset / this.clusterSize), Math.floor((offset + length - 1) / this.clusterSize));
    // Appending a block references its own cluster, which may finish the next block in turn.
    for (let finished = this.#refcounts.takeFinished(); finished.length > 0; finished = this.#refcounts.takeFinished()) {
      for (const { blockIndex, block } of finished) this.#blockOffsets[blockIndex] = this.appendClusters(block);
    }
  }
}
