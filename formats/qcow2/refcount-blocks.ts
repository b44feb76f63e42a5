// Refcounts of a qcow2 file that is written front to back. Host clusters are referenced in
// non-decreasing order (the writer only appends), so only the refcount block that covers the
// newest clusters is still changing: once a reference lands past it, that block is final and is
// handed out to be appended to the file. Memory stays at one or two clusters whatever the file
// size, plus one number per finished block (its offset, for the refcount table).
//
//   block b covers host clusters [b * entriesPerBlock, (b + 1) * entriesPerBlock)
//   entriesPerBlock = clusterSize * 8 / 16   (16-bit refcounts: 32 768 for 64 KiB clusters)

import { SbmError } from '../../lib/errors.js';
import { QCOW2_REFCOUNT16 } from './write-layouts.js';

const readRefcount = QCOW2_REFCOUNT16.reader('refcount');
const writeRefcount = QCOW2_REFCOUNT16.writer('refcount');
const MAX_REFCOUNT = 0xffff;

export interface FinishedBlock {
  readonly blockIndex: number;
  readonly block: Buffer;
}

export class RefcountBlocks {
  readonly entriesPerBlock: number;
  #blockIndex = 0;
  #block: Buffer;
  readonly #finished: FinishedBlock[] = [];

  constructor(private readonly clusterSize: number) {
    this.entriesPerBlock = clusterSize / QCOW2_REFCOUNT16.sizeBytes;
    this.#block = Buffer.alloc(clusterSize);
  }

  /** The block that takes the newest references (every block before it is finished). */
  get currentBlockIndex(): number {
    return this.#blockIndex;
  }

  /** Adds one reference to each host cluster in [firstCluster, lastCluster]. */
  addRange(firstCluster: number, lastCluster: number): void {
    for (let cluster = firstCluster; cluster <= lastCluster; cluster++) this.#add(cluster);
  }

  /** Blocks that can no longer change, in order; each is handed out once. */
  takeFinished(): FinishedBlock[] {
    return this.#finished.splice(0, this.#finished.length);
  }

  /** Finishes the current block too (the file is complete): the last blocks, in order. */
  finishAll(): FinishedBlock[] {
    this.#finished.push({ blockIndex: this.#blockIndex, block: this.#block });
    this.#block = Buffer.alloc(this.clusterSize);
    this.#blockIndex++;
    return this.takeFinished();
  }

  #add(cluster: number): void {
    const blockIndex = Math.floor(cluster / this.entriesPerBlock);
    if (blockIndex < this.#blockIndex) {
      // The writer appends only; a reference behind a finished block is a bug in the writer.
      throw new SbmError('SBM_INTERNAL', `qcow2 writer: cluster ${cluster} referenced after its refcount block was written`);
    }
    while (blockIndex > this.#blockIndex) {
      this.#finished.push({ blockIndex: this.#blockIndex, block: this.#block });
      this.#block = Buffer.alloc(this.clusterSize);
      this.#blockIndex++;
    }
    const at = (cluster % this.entriesPerBlock) * QCOW2_REFCOUNT16.sizeBytes;
    const count = readRefcount(this.#block, at) + 1;
    if (count > MAX_REFCOUNT)
      throw new SbmError('SBM_INTERNAL', `qcow2 writer: cluster ${cluster} has more than ${MAX_REFCOUNT} references`);
    writeRefcount(this.#block, at, count);
  }
}
