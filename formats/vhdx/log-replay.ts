// Replays a pending VHDX log in memory ([MS-VHDX] 2.3; shared/reference/vhd-vhdx-format.md B.6).
// Windows journals its metadata updates (BAT entries, mostly) through the log and clears the
// header's LogGuid once they are written in place; a disk copied from a running VM, or left by a
// crash, still has them only in the log. The file is never written: the replayed sectors become
// an overlay that every later read of the file sees (VhdxFile.readExact).
//
//   log ring (LogLength bytes at LogOffset, 4 KiB sectors; an entry may wrap past its end)
//   entry   = descriptor sectors (64-byte header, then 32-byte descriptors) + one data sector per `desc`
//   valid   = "loge", CRC-32C over the entry (checksum field zeroed), the header's LogGuid,
//             descriptors and data sectors carrying the entry's sequence number
//   active  = the run of valid entries tail -> head (each right after the previous, sequence
//             numbers +1) whose head has the largest sequence number; its head's Tail names the run's start
//   replay  = every descriptor of the run, oldest first: `desc` writes a sector, `zero` zeros a range

import { crc32c } from '../../lib/checksums.js';
import { MiB } from './constants.js';
import type { Region } from './header-section.js';
import { LOG_DATA_DESCRIPTOR, LOG_DATA_SECTOR, LOG_ENTRY_HEADER, LOG_ZERO_DESCRIPTOR } from './layouts.js';
import type { VhdxFile } from './vhdx-file.js';

const SECTOR = 4096;
/** Logs are 1 MiB as Hyper-V and qemu make them; a larger one is read whole up to this. */
const MAX_LOG_BYTES = 64 * MiB;
/**
 * Hostile logs must not cost unbounded time. Real entries do not overlap, so checking them reads
 * the ring about once; a ring of forged headers that each claim the whole ring would be checked
 * again and again. So: at most this many ring lengths checksummed, this many steps walking runs,
 * and this many descriptors replayed (Hyper-V logs hold a handful).
 */
const MAX_RINGS_CHECKED = 4;
const MAX_WALK_STEPS = 1_000_000;
const MAX_OPERATIONS = 4096;

type Operation =
  | { readonly kind: 'zero'; readonly start: number; readonly end: number }
  | { readonly kind: 'sector'; readonly at: number; readonly bytes: Buffer };

interface Entry {
  readonly offset: number;
  readonly length: number;
  readonly tail: number;
  readonly sequence: bigint;
  readonly flushedFileOffset: bigint;
  readonly lastFileOffset: bigint;
  readonly operations: readonly Operation[];
}

/** What replaying the log changes in the file, as reads must see it. */
export class LogOverlay {
  private readonly sectors = new Map<number, Buffer>();
  private readonly zeroRanges: Array<{ readonly start: number; readonly end: number }> = [];

  constructor(
    /** Entries replayed, and the head's sequence number (for sbm info). */
    readonly entries: number,
    readonly headSequence: bigint,
    /** The file's size once replayed: the head's LastFileOffset or the end of its last write. */
    readonly fileSizeBytes: number,
    operations: readonly Operation[],
  ) {
    // The last operation on a sector wins: a zero range drops the sectors written before it, and
    // a sector written after it lies in `sectors`, which reads apply after the ranges.
    for (const operation of operations) {
      if (operation.kind === 'sector') {
        this.sectors.set(operation.at, operation.bytes);
        continue;
      }
      this.zeroRanges.push(operation);
      for (const at of this.sectors.keys()) if (at >= operation.start && at < operation.end) this.sectors.delete(at);
    }
  }

  /** Puts the replayed bytes over `target`, just read from the file at `position`. */
  apply(target: Uint8Array, position: number): void {
    const end = position + target.length;
    for (const range of this.zeroRanges) {
      if (range.end > position && range.start < end)
        target.fill(0, Math.max(range.start, position) - position, Math.min(range.end, end) - position);
    }
    if (this.sectors.size === 0) return;
    for (let at = Math.floor(position / SECTOR) * SECTOR; at < end; at += SECTOR) {
      const sector = this.sectors.get(at);
      if (sector === undefined) continue;
      const from = Math.max(at, position);
      const to = Math.min(at + SECTOR, end);
      target.set(sector.subarray(from - at, to - at), from - position);
    }
  }
}

/**
 * Finds and replays the active log sequence. undefined when no valid entry carries `logGuid`
 * (qemu-img then opens the file as it is; the caller warns). SBM_CORRUPT when the log's own
 * facts say the file is truncated; SBM_UNSUPPORTED for a log too large to hold.
 */
export async function replayLog(file: VhdxFile, log: Region, logGuid: Buffer): Promise<LogOverlay | undefined> {
  if (log.length > MAX_LOG_BYTES)
    throw file.unsupported(`a VHDX log of ${log.length} bytes with changes to replay (at most ${MAX_LOG_BYTES})`);
  const ring = await file.read(log.length, log.fileOffset, 'VHDX log');
  const valid = new Map<number, Entry>();
  const budget = { checkedBytes: MAX_RINGS_CHECKED * ring.length, walkSteps: MAX_WALK_STEPS };
  for (let offset = 0; offset < ring.length; offset += SECTOR) {
    const entry = entryAt(ring, offset, logGuid, budget);
    if (entry !== undefined) valid.set(offset, entry);
    if (budget.checkedBytes < 0) throw file.corrupt('the VHDX log holds entry headers that overlap again and again');
  }
  // The run of the head with the largest sequence number wins: try heads in that order.
  let active: Entry[] | undefined;
  for (const head of [...valid.values()].sort((a, b) => (a.sequence < b.sequence ? 1 : a.sequence > b.sequence ? -1 : 0))) {
    active = runEndingAt(head, valid, ring.length, budget);
    if (active !== undefined) break;
    if (budget.walkSteps < 0) throw file.corrupt('the VHDX log entries chain into too long a search');
  }
  if (active === undefined) return undefined;
  const head = active.at(-1) as Entry;
  if (head.flushedFileOffset > BigInt(file.sizeBytes)) {
    throw file.corrupt(
      `the VHDX log says the file was flushed up to ${head.flushedFileOffset} bytes, but it has ${file.sizeBytes}: truncated`,
    );
  }
  const operations = active.flatMap((entry) => entry.operations);
  if (operations.length > MAX_OPERATIONS) {
    throw file.unsupported(`the VHDX log holds ${operations.length} changes to replay (at most ${MAX_OPERATIONS})`);
  }
  const writesEnd = operations.reduce(
    (end, operation) => Math.max(end, operation.kind === 'zero' ? operation.end : operation.at + SECTOR),
    0,
  );
  const size = Math.max(file.sizeBytes, writesEnd, safeOffset(file, head.lastFileOffset));
  return new LogOverlay(active.length, head.sequence, size, operations);
}

/** The valid entry starting at `offset` of the ring, or undefined. */
function entryAt(ring: Buffer, offset: number, logGuid: Buffer, budget: { checkedBytes: number }): Entry | undefined {
  const header = LOG_ENTRY_HEADER.decode(ring, offset);
  const length = header.entryLength;
  if (header.signature.toString('latin1') !== 'loge' || length === 0 || length % SECTOR !== 0 || length > ring.length) return undefined;
  if (!header.logGuid.equals(logGuid) || header.sequenceNumber === 0n || header.tail % SECTOR !== 0 || header.tail >= ring.length) {
    return undefined;
  }
  budget.checkedBytes -= length;
  if (budget.checkedBytes < 0) return undefined;
  const bytes = ringSlice(ring, offset, length);
  bytes.writeUInt32LE(0, 4);
  if (crc32c(bytes) !== header.checksum) return undefined;
  const operations = operationsOf(bytes, header.descriptorCount, header.sequenceNumber);
  if (operations === undefined) return undefined;
  return {
    offset,
    length,
    tail: header.tail,
    sequence: header.sequenceNumber,
    flushedFileOffset: header.flushedFileOffset,
    lastFileOffset: header.lastFileOffset,
    operations,
  };
}

/** The entry's descriptors as operations; undefined when they do not fill the entry exactly or disagree with it. */
function operationsOf(entry: Buffer, count: number, sequence: bigint): Operation[] | undefined {
  const descriptorBytes = Math.ceil((LOG_ENTRY_HEADER.sizeBytes + count * LOG_ZERO_DESCRIPTOR.sizeBytes) / SECTOR) * SECTOR;
  if (descriptorBytes > entry.length) return undefined;
  const operations: Operation[] = [];
  let dataAt = descriptorBytes;
  for (let index = 0; index < count; index++) {
    const at = LOG_ENTRY_HEADER.sizeBytes + index * LOG_ZERO_DESCRIPTOR.sizeBytes;
    const signature = entry.toString('latin1', at, at + 4);
    if (signature === 'zero') {
      const zero = LOG_ZERO_DESCRIPTOR.decode(entry, at);
      const start = zero.fileOffset;
      if (zero.sequenceNumber !== sequence || start % BigInt(SECTOR) !== 0n || zero.zeroLength % BigInt(SECTOR) !== 0n) return undefined;
      const end = start + zero.zeroLength;
      if (end > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
      operations.push({ kind: 'zero', start: Number(start), end: Number(end) });
    } else if (signature === 'desc') {
      const descriptor = LOG_DATA_DESCRIPTOR.decode(entry, at);
      const target = descriptor.fileOffset;
      if (descriptor.sequenceNumber !== sequence || target % BigInt(SECTOR) !== 0n || target > BigInt(Number.MAX_SAFE_INTEGER))
        return undefined;
      if (dataAt + SECTOR > entry.length) return undefined;
      const data = LOG_DATA_SECTOR.decode(entry, dataAt);
      const framed = BigInt(data.sequenceHigh) * 2n ** 32n + BigInt(data.sequenceLow);
      if (data.signature.toString('latin1') !== 'data' || framed !== sequence) return undefined;
      operations.push({
        kind: 'sector',
        at: Number(target),
        bytes: Buffer.concat([descriptor.leadingBytes, data.data, descriptor.trailingBytes]),
      });
      dataAt += SECTOR;
    } else return undefined;
  }
  return dataAt === entry.length ? operations : undefined;
}

/** The run tail -> `head` that `head` names, each entry right after the previous with the next sequence number. */
function runEndingAt(
  head: Entry,
  valid: ReadonlyMap<number, Entry>,
  ringLength: number,
  budget: { walkSteps: number },
): Entry[] | undefined {
  const run: Entry[] = [];
  let at = head.tail;
  let expected: bigint | undefined;
  for (let steps = 0; steps < valid.size && budget.walkSteps-- > 0; steps++) {
    const entry = valid.get(at);
    if (entry === undefined || (expected !== undefined && entry.sequence !== expected)) return undefined;
    run.push(entry);
    if (entry === head) return run;
    expected = entry.sequence + 1n;
    at = (at + entry.length) % ringLength;
  }
  return undefined;
}

/** `length` bytes of the ring from `offset`, continuing at its start when they pass its end (a copy). */
function ringSlice(ring: Buffer, offset: number, length: number): Buffer {
  const first = ring.subarray(offset, Math.min(ring.length, offset + length));
  return Buffer.concat([first, ring.subarray(0, length - first.length)]);
}

function safeOffset(file: VhdxFile, value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw file.corrupt(`the VHDX log names a file offset of ${value} bytes`);
  return Number(value);
}
