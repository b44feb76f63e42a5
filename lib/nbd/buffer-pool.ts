// Reusable I/O buffers by size class, so 256 KiB READ replies and WRITE payloads do not each
// allocate fresh external memory (which costs page faults and frequent full GCs at GiB/s).
// A buffer is returned with release() once the socket or the device is done with it; releasing a
// buffer the pool did not hand out, or releasing twice, is a no-op, so a slip cannot make two
// requests share memory.

/**
 * Each class holds a power-of-two payload plus room for a reply header, so a 256 KiB READ reply
 * (header + data in one frame) takes a 256 KiB buffer, not a 1 MiB one: with 1 MiB buffers,
 * nbdcopy's 4 x 64 requests in flight outgrew the idle cap and every reply allocated afresh.
 */
export const FRAME_HEADROOM_BYTES = 64;
const SIZE_CLASSES = [4096, 64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 32 * 1024 * 1024].map(
  (size) => size + FRAME_HEADROOM_BYTES,
);
/** Idle memory kept across all classes; more is left to the GC. */
const DEFAULT_MAX_IDLE_BYTES = 128 * 1024 * 1024;

export class BufferPool {
  private readonly free: ArrayBuffer[][] = SIZE_CLASSES.map(() => []);
  private readonly outstanding = new Set<ArrayBuffer>();
  private idleBytes = 0;

  constructor(private readonly maxIdleBytes = DEFAULT_MAX_IDLE_BYTES) {}

  /** A buffer of exactly `length` bytes (contents undefined). */
  acquire(length: number): Buffer {
    const index = SIZE_CLASSES.findIndex((size) => size >= length);
    if (index === -1) return Buffer.allocUnsafeSlow(length);
    let memory = this.free[index]?.pop();
    if (memory !== undefined) this.idleBytes -= memory.byteLength;
    else memory = Buffer.allocUnsafeSlow(SIZE_CLASSES[index] as number).buffer;
    this.outstanding.add(memory);
    return Buffer.from(memory, 0, length);
  }

  release(buffer: Buffer): void {
    const memory = buffer.buffer;
    if (!(memory instanceof ArrayBuffer) || !this.outstanding.delete(memory)) return;
    const index = SIZE_CLASSES.indexOf(memory.byteLength);
    const list = this.free[index];
    if (list !== undefined && this.idleBytes + memory.byteLength <= this.maxIdleBytes) {
      list.push(memory);
      this.idleBytes += memory.byteLength;
    }
  }

  /** Lets go of every idle buffer (buffers still out are unaffected and may be released later). */
  clear(): void {
    for (const list of this.free) list.length = 0;
    this.idleBytes = 0;
  }

  /** Bytes of idle buffers kept for reuse. */
  get idleBufferBytes(): number {
    return this.idleBytes;
  }

  /** Buffers handed out and not given back yet (read chunks, payloads, replies in flight). */
  get buffersOut(): number {
    return this.outstanding.size;
  }

  get idleBuffers(): number {
    return this.free.reduce((sum, list) => sum + list.length, 0);
  }
}
