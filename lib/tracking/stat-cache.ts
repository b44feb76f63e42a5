// .sbm/stat-cache: what sbm last saw of each band file (inode, size, mtime, ctime in microseconds) and of
// the bands/ folder, so edits made behind sbm's back show up as a stat difference. Slots are
// indexed by band, so one band is checked or updated with one positional read or write.
//
//   STAT_CACHE_HEADER (64 bytes)                 STAT_SLOT (48 bytes, at 64 + band * 48)
//   +0 magic u32 "SBMS" | +4 crc32 of 8..63      +0 crc32 of 4..47 | +4 state u32 (0 unknown,
//   +8 epochTag u32 | +12 version u16              1 present, 2 absent) | +8 statGeneration u64
//   +14 reserved u16 | +16 dirIno u64             +16 ino u64 | +24 size u64 | +32 mtimeUs u64
//   +24 dirMtimeUs u64 | +32 dirCtimeUs u64       +40 ctimeUs u64
//   +40 statGeneration u64 | +48 reserved u64 x2
//
// A slot's statGeneration is the generation during which the stat was taken; sbm's own later
// changes to that band carry records of a higher generation, which is how an audit tells them
// from foreign edits. A slot with a bad checksum reads as unknown (an audit then reports the band
// unless a record explains it), so torn slot writes can only over-report.

import { open, stat, type FileHandle } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { readFully, writeFully } from '../fs/read-fully.js';
import { checksum, defineTable } from './binary-table.js';
import {
  SLOT_ABSENT,
  SLOT_PRESENT,
  STAT_CACHE_HEADER_SIZE,
  STAT_CACHE_MAGIC,
  STAT_CACHE_VERSION,
  STAT_SLOT_SIZE,
} from './constants.js';

export const STAT_CACHE_HEADER = defineTable('STAT_CACHE_HEADER', STAT_CACHE_HEADER_SIZE, [
  { name: 'magic', offset: 0, type: 'u32' },
  { name: 'crc', offset: 4, type: 'u32' },
  { name: 'epochTag', offset: 8, type: 'u32' },
  { name: 'version', offset: 12, type: 'u16' },
  { name: 'reserved0', offset: 14, type: 'u16' },
  { name: 'dirIno', offset: 16, type: 'u64' },
  { name: 'dirMtimeUs', offset: 24, type: 'u64' },
  { name: 'dirCtimeUs', offset: 32, type: 'u64' },
  { name: 'statGeneration', offset: 40, type: 'u64' },
  { name: 'reserved1', offset: 48, type: 'u64' },
  { name: 'reserved2', offset: 56, type: 'u64' },
] as const);

export const STAT_SLOT = defineTable('STAT_SLOT', STAT_SLOT_SIZE, [
  { name: 'crc', offset: 0, type: 'u32' },
  { name: 'state', offset: 4, type: 'u32' },
  { name: 'statGeneration', offset: 8, type: 'u64' },
  { name: 'ino', offset: 16, type: 'u64' },
  { name: 'size', offset: 24, type: 'u64' },
  { name: 'mtimeUs', offset: 32, type: 'u64' },
  { name: 'ctimeUs', offset: 40, type: 'u64' },
] as const);

const readSlotCrc = STAT_SLOT.reader('crc');
const readSlotState = STAT_SLOT.reader('state');
const readSlotStatGeneration = STAT_SLOT.reader('statGeneration');
const readSlotIno = STAT_SLOT.reader('ino');
const readSlotSize = STAT_SLOT.reader('size');
const readSlotMtimeUs = STAT_SLOT.reader('mtimeUs');
const readSlotCtimeUs = STAT_SLOT.reader('ctimeUs');

/** A stat as the cache keeps it; undefined = the file does not exist. */
export interface FileStamp {
  readonly ino: number;
  readonly size: number;
  readonly mtimeUs: number;
  readonly ctimeUs: number;
}

export interface SlotEntry {
  readonly state: 'unknown' | 'present' | 'absent';
  readonly statGeneration: number;
  readonly stamp?: FileStamp;
}

const UNKNOWN: SlotEntry = { state: 'unknown', statGeneration: -1 };

/** Timestamps are kept to the microsecond so they fit in a safe integer (2^53 ns is only 104 days). */
export function stampOf(info: BigIntStats): FileStamp {
  return {
    ino: Number(info.ino & 0x1fffffffffffffn),
    size: Number(info.size),
    mtimeUs: Number(info.mtimeNs / 1000n),
    ctimeUs: Number(info.ctimeNs / 1000n),
  };
}

export async function stampPath(path: string): Promise<FileStamp | undefined> {
  try {
    return stampOf(await stat(path, { bigint: true }));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export function sameStamp(a: FileStamp | undefined, b: FileStamp | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.ino === b.ino && a.size === b.size && a.mtimeUs === b.mtimeUs && a.ctimeUs === b.ctimeUs;
}

/** True when the slot describes exactly what is on disk now (unknown matches nothing but absence). */
export function slotMatches(slot: SlotEntry, now: FileStamp | undefined): boolean {
  if (slot.state === 'unknown') return now === undefined;
  if (slot.state === 'absent') return now === undefined;
  return sameStamp(slot.stamp, now);
}

export class StatCache {
  private constructor(
    private readonly handle: FileHandle | undefined,
    private bytes: Buffer,
    readonly epochTag: number,
    readonly headerValid: boolean,
    public dirStamp: FileStamp | undefined,
  ) {}

  /** Loads the cache; a missing file, a bad header or another epoch's file loads as `undefined`. */
  static async load(path: string, epochTag: number, writable: boolean): Promise<StatCache | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(path, writable ? 'r+' : 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    let bytes: Buffer;
    try {
      const { size } = await handle.stat();
      // One read of the whole file, no zero-filling first: readFully zeroes whatever it cannot read.
      bytes = Buffer.allocUnsafe(Math.max(size, STAT_CACHE_HEADER_SIZE));
      await readFully(handle, bytes, 0);
    } catch (error) {
      await handle.close();
      throw error;
    }
    // Magic, checksum and version before any field is decoded: a damaged header is a missing cache.
    const headerValid =
      bytes.readUInt32LE(0) === STAT_CACHE_MAGIC &&
      bytes.readUInt32LE(4) === checksum(bytes, 8, STAT_CACHE_HEADER_SIZE) &&
      bytes.readUInt16LE(12) === STAT_CACHE_VERSION;
    const header = headerValid ? STAT_CACHE_HEADER.decode(bytes.subarray(0, STAT_CACHE_HEADER_SIZE)) : undefined;
    if (header === undefined || header.epochTag !== epochTag) {
      await handle.close();
      return undefined;
    }
    if (!writable) await handle.close();
    const dirStamp = header.dirIno === 0 ? undefined : { ino: header.dirIno, size: 0, mtimeUs: header.dirMtimeUs, ctimeUs: header.dirCtimeUs };
    return new StatCache(writable ? handle : undefined, bytes, epochTag, headerValid, dirStamp);
  }

  /** Creates an empty cache file for a new epoch (caller renames it into place). */
  static async create(path: string, epochTag: number): Promise<StatCache> {
    const handle = await open(path, 'w+', 0o644);
    const bytes = Buffer.alloc(STAT_CACHE_HEADER_SIZE);
    const cache = new StatCache(handle, bytes, epochTag, false, undefined);
    return cache;
  }

  slot(bandIndex: number): SlotEntry {
    const offset = this.validSlotOffset(bandIndex);
    if (offset === undefined) return UNKNOWN;
    const bytes = this.bytes;
    const state = readSlotState(bytes, offset);
    if (state === SLOT_ABSENT) return { state: 'absent', statGeneration: readSlotStatGeneration(bytes, offset) };
    if (state !== SLOT_PRESENT) return UNKNOWN;
    return {
      state: 'present',
      statGeneration: readSlotStatGeneration(bytes, offset),
      stamp: { ino: readSlotIno(bytes, offset), size: readSlotSize(bytes, offset), mtimeUs: readSlotMtimeUs(bytes, offset), ctimeUs: readSlotCtimeUs(bytes, offset) },
    };
  }

  /** slot(bandIndex).statGeneration without building the entry (-1 = unknown): run per logged band on open. */
  statGenerationOf(bandIndex: number): number {
    const offset = this.validSlotOffset(bandIndex);
    if (offset === undefined) return -1;
    const state = readSlotState(this.bytes, offset);
    return state === SLOT_PRESENT || state === SLOT_ABSENT ? readSlotStatGeneration(this.bytes, offset) : -1;
  }

  /** Band indexes whose slot says the band exists. Reads every slot: O(bands), used by full audits. */
  presentBands(): number[] {
    const list: number[] = [];
    const slots = Math.floor((this.bytes.length - STAT_CACHE_HEADER_SIZE) / STAT_SLOT_SIZE);
    for (let bandIndex = 0; bandIndex < slots; bandIndex++) {
      const offset = STAT_CACHE_HEADER_SIZE + bandIndex * STAT_SLOT_SIZE;
      if (readSlotState(this.bytes, offset) === SLOT_PRESENT && this.validSlotOffset(bandIndex) !== undefined) list.push(bandIndex);
    }
    return list;
  }

  /**
   * How many slots say "present", counted without checksums (a quick estimate for choosing the
   * audit, never for deciding what changed).
   */
  presentCount(): number {
    let count = 0;
    for (let offset = STAT_CACHE_HEADER_SIZE + 4; offset + STAT_SLOT_SIZE - 4 <= this.bytes.length; offset += STAT_SLOT_SIZE) {
      if (this.bytes.readUInt32LE(offset) === SLOT_PRESENT) count++;
    }
    return count;
  }

  /** Offset of the band's slot when it lies inside the file and its checksum holds. */
  private validSlotOffset(bandIndex: number): number | undefined {
    const offset = STAT_CACHE_HEADER_SIZE + bandIndex * STAT_SLOT_SIZE;
    if (offset + STAT_SLOT_SIZE > this.bytes.length) return undefined;
    return readSlotCrc(this.bytes, offset) === checksum(this.bytes, offset + 4, offset + STAT_SLOT_SIZE) ? offset : undefined;
  }

  /** Records stamps (undefined = absent) for bands, then the folder stamp; fdatasyncs once. */
  async save(entries: ReadonlyMap<number, FileStamp | undefined>, dirStamp: FileStamp | undefined, statGeneration: number): Promise<void> {
    if (this.handle === undefined) throw new Error('stat cache opened read-only');
    for (const [bandIndex, stamp] of [...entries].sort((a, b) => a[0] - b[0])) {
      const slot = STAT_SLOT.encode({
        crc: 0,
        state: stamp === undefined ? SLOT_ABSENT : SLOT_PRESENT,
        statGeneration,
        ino: stamp?.ino ?? 0,
        size: stamp?.size ?? 0,
        mtimeUs: stamp?.mtimeUs ?? 0,
        ctimeUs: stamp?.ctimeUs ?? 0,
      });
      slot.writeUInt32LE(checksum(slot, 4, STAT_SLOT_SIZE), 0);
      const offset = STAT_CACHE_HEADER_SIZE + bandIndex * STAT_SLOT_SIZE;
      this.ensureLength(offset + STAT_SLOT_SIZE);
      slot.copy(this.bytes, offset);
      await writeFully(this.handle, slot, offset);
    }
    const header = STAT_CACHE_HEADER.encode({
      magic: STAT_CACHE_MAGIC,
      crc: 0,
      epochTag: this.epochTag,
      version: STAT_CACHE_VERSION,
      reserved0: 0,
      dirIno: dirStamp?.ino ?? 0,
      dirMtimeUs: dirStamp?.mtimeUs ?? 0,
      dirCtimeUs: dirStamp?.ctimeUs ?? 0,
      statGeneration,
      reserved1: 0,
      reserved2: 0,
    });
    header.writeUInt32LE(checksum(header, 8, STAT_CACHE_HEADER_SIZE), 4);
    header.copy(this.bytes, 0);
    await writeFully(this.handle, header, 0);
    await this.handle.datasync();
    this.dirStamp = dirStamp;
  }

  async close(): Promise<void> {
    await this.handle?.close();
  }

  private ensureLength(length: number): void {
    if (length <= this.bytes.length) return;
    const grown = Buffer.alloc(Math.max(length, this.bytes.length * 2));
    this.bytes.copy(grown);
    this.bytes = grown;
  }
}
