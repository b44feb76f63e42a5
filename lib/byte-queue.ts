// A FIFO of received bytes kept as a list of chunks: appending never copies, and bytes are copied
// once when a frame is taken out (never a Buffer.concat per arriving chunk). Taking more than is
// queued is a bug in the caller (the protocol checks the length first): SBM_INTERNAL.
// Given a `release` function, the queue owns its chunks (pooled read buffers): each goes back
// once its last byte is taken, clear() gives back the rest, and take() always copies, so no view
// outlives the memory it points into.

import { SbmError } from './errors.js';

export class ByteQueue {
  private chunks: Buffer[] = [];
  /** Read position inside chunks[0]. */
  private head = 0;
  private total = 0;

  constructor(private readonly release?: (chunk: Buffer) => void) {}

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) {
      this.release?.(chunk);
      return;
    }
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /**
   * Removes and returns the first `count` bytes (count <= length). When they sit in one chunk the
   * result is a view of it, else one copy into a new buffer.
   */
  take(count: number): Buffer {
    if (count > this.total) throw new SbmError('SBM_INTERNAL', `take(${count}) with ${this.total} bytes queued`);
    const first = this.chunks[0];
    if (this.release === undefined && first !== undefined && first.length - this.head >= count) {
      const view = first.subarray(this.head, this.head + count);
      this.advance(count);
      return view;
    }
    const out = Buffer.allocUnsafe(count);
    this.copyOut(out);
    return out;
  }

  /** Drops every queued byte (an owned queue gives its chunks back). */
  clear(): void {
    this.advance(this.total);
  }

  /** Drops up to `count` bytes; returns how many were dropped. */
  skip(count: number): number {
    const dropped = Math.min(count, this.total);
    this.advance(dropped);
    return dropped;
  }

  /** Removes the first `target.length` bytes (<= length) by copying them into `target`. */
  takeInto(target: Buffer): void {
    if (target.length > this.total) throw new SbmError('SBM_INTERNAL', `takeInto(${target.length}) with ${this.total} bytes queued`);
    this.copyOut(target);
  }

  private copyOut(target: Buffer): void {
    let written = 0;
    while (written < target.length) {
      const chunk = this.chunks[0] as Buffer;
      const piece = Math.min(chunk.length - this.head, target.length - written);
      chunk.copy(target, written, this.head, this.head + piece);
      written += piece;
      this.advance(piece);
    }
  }

  private advance(count: number): void {
    this.total -= count;
    let remaining = count;
    while (remaining > 0) {
      const chunk = this.chunks[0] as Buffer;
      const left = chunk.length - this.head;
      if (remaining < left) {
        this.head += remaining;
        return;
      }
      remaining -= left;
      this.drop();
    }
    const chunk = this.chunks[0];
    if (chunk !== undefined && this.head === chunk.length) this.drop();
  }

  /** Removes the first chunk (all of it taken), giving it back when the queue owns it. */
  private drop(): void {
    const chunk = this.chunks.shift();
    this.head = 0;
    if (chunk !== undefined) this.release?.(chunk);
  }
}
