// .sbm/stat-cache: what sbm last saw of each band file (inode, size, mtime, ctime in microseconds) and of
// the bands/ folder, so edits made behind sbm's back show up as a stat difference. Slots are
// indexed by band, so one band is checked or updated with one positional read or write; the
// whole file is read only by audits that look at every band.
//
//   STAT_CACHE_HEADER (64 bytes)                 STAT_SLOT (48 bytes, at 64 + band * 48)
//   +0 magic u32 "SBMS" | +4 crc32 of 8..63      +0 crc32 of 4..47 | +4 state u32 (0 unknown,
//   +8 epochTag u32 | +12 version u16              1 present, 2 absent) | +8 statGeneration u64
//   +14 flags u16 | +16 dirIno u64                +16 ino u64 | +24 size u64 | +32 mtimeUs u64
//   +24 dirMtimeUs u64 | +32 dirCtimeUs u64       +40 ctimeUs u64
//   +40 statGeneration u64
//   +48 logTrustedBytes u32 | +52 logBandsAtLeast u32 | +56 logTrustedCrc u32 | +60 presentBands u32
//
// A slot's statGeneration is the generation during which the stat was taken; sbm's own later
// changes to that band carry records of a higher generation, which is how an audit tells them
// from foreign edits. A slot with a bad checksum reads as unknown (an audit then reports the band
// unless a record explains it), so torn slot writes can only over-report.
//
// The flags say whether the trusted log point and the present count hold values (clear: not
// known, and the count is then taken by reading every slot); logBandsAtLeast 0 means unknown.
// The u32s at +52 and +60 stay at most 0x1fffff, so the 8-byte words at +48 and +56 are also safe
// integers when read as u64s: a larger lower bound is lowered, a larger count is not kept.
//   log trusted   (flag LOG_TRUSTED) the first logTrustedBytes of changes.log (CRC-32 logTrustedCrc) hold only valid
//                 records of this epoch, and every band they name has a slot saved by a save that
//                 completed (its fdatasync returned). So an open whose log still starts with those
//                 bytes checks records and slots only for the records after them. A plain save
//                 writes slots and header together, so its header names the previous save's log
//                 point; a save of bands without new records (restamps) clears the flag first.
//   presentBands  slots saying "present" (flag PRESENT_COUNT, kept up to date by each save): picks the audit for
//                 `auto` without reading every slot. An estimate, never used to decide a change.
//   logBandsAtLeast  a lower bound on the distinct bands in changes.log, to decide compaction
//                 without indexing the whole log.

import { open, stat, type FileHandle } from 'node:fs/promises';
import { constants, statSync, type BigIntStats } from 'node:fs';
import { checkTrackingFile, openTrackingFile } from './tracking-file.js';
import { readFully, readFullySync, writeFully } from '../fs/read-fully.js';
import { defineLayout } from '../binary-layout.js';
import { crc32 } from '../checksums.js';
import { SbmError } from '../errors.js';
import {
  SLOT_ABSENT,
  SLOT_PRESENT,
  STAT_CACHE_FLAG_LOG_TRUSTED,
  STAT_CACHE_FLAG_PRESENT_COUNT,
  STAT_CACHE_HEADER_SIZE,
  STAT_CACHE_MAGIC,
  STAT_CACHE_VERSION,
  STAT_SLOT_SIZE,
} from './constants.js';

export const STAT_CACHE_HEADER = defineLayout('STAT_CACHE_HEADER', STAT_CACHE_HEADER_SIZE, 'le', [
  { name: 'magic', offset: 0, type: 'u32', equals: STAT_CACHE_MAGIC },
  { name: 'crc', offset: 4, type: 'u32' },
  { name: 'epochTag', offset: 8, type: 'u32' },
  { name: 'version', offset: 12, type: 'u16', equals: STAT_CACHE_VERSION },
  { name: 'flags', offset: 14, type: 'u16' },
  { name: 'dirIno', offset: 16, type: 'u64n' },
  { name: 'dirMtimeUs', offset: 24, type: 'u64n' },
  { name: 'dirCtimeUs', offset: 32, type: 'u64n' },
  { name: 'statGeneration', offset: 40, type: 'u64n' },
  { name: 'logTrustedBytes', offset: 48, type: 'u32' },
  { name: 'logBandsAtLeast', offset: 52, type: 'u32' },
  { name: 'logTrustedCrc', offset: 56, type: 'u32' },
  { name: 'presentBands', offset: 60, type: 'u32' },
] as const);

export const STAT_SLOT = defineLayout('STAT_SLOT', STAT_SLOT_SIZE, 'le', [
  { name: 'crc', offset: 0, type: 'u32' },
  { name: 'state', offset: 4, type: 'u32' },
  { name: 'statGeneration', offset: 8, type: 'u64n' },
  { name: 'ino', offset: 16, type: 'u64n' },
  { name: 'size', offset: 24, type: 'u64n' },
  { name: 'mtimeUs', offset: 32, type: 'u64n' },
  { name: 'ctimeUs', offset: 40, type: 'u64n' },
] as const);

/** Each checksum covers every field after it. */
const HEADER_CRC_FROM = STAT_CACHE_HEADER.offsetOf('epochTag');
const SLOT_CRC_FROM = STAT_SLOT.offsetOf('state');
const readHeaderCrc = STAT_CACHE_HEADER.reader('crc');
const writeHeaderCrc = STAT_CACHE_HEADER.writer('crc');
const writeSlotCrc = STAT_SLOT.writer('crc');

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

/**
 * stampPath without the thread pool, for stat-ing many bands in a row (inSyncRuns): one stat is a
 * few microseconds in the kernel, a thread-pool round trip costs more than that again.
 */
export function stampPathSync(path: string): FileStamp | undefined {
  const stats = statSync(path, { bigint: true, throwIfNoEntry: false });
  return stats === undefined ? undefined : stampOf(stats);
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

/** A prefix of changes.log: its length and the CRC-32 of those bytes. */
export interface LogPoint {
  readonly bytes: number;
  readonly crc: number;
}

export interface SaveOptions {
  /** The prefix of changes.log that every slot on disk covers once this save is durable. */
  readonly logTrusted: LogPoint | undefined;
  /** Lower bound on the distinct bands in changes.log. */
  readonly logBandsAtLeast: number;
  /**
   * Some bands are saved without a change record after the trusted log point (restamps): clear
   * the trusted flag durably before touching their slots, so a crash part-way makes the next open
   * check every slot again.
   */
  readonly distrustFirst?: boolean;
}

export class StatCache {
  /** The whole file, once something needed every slot; until then slots are read one by one. */
  private bytes: Buffer | undefined;
  private fileBytes: number;
  private flags: number;
  private presentCountValue: number;
  private readonly scratch = Buffer.alloc(STAT_SLOT_SIZE);
  /** Slots read one at a time so far; past SINGLE_SLOT_READS_MAX the whole file is read instead. */
  private singleReads = 0;

  private constructor(
    private readonly handle: FileHandle,
    readonly writable: boolean,
    header: Record<'flags' | 'presentBands' | 'logTrustedBytes' | 'logTrustedCrc' | 'logBandsAtLeast' | 'statGeneration', number>,
    fileBytes: number,
    readonly epochTag: number,
    public dirStamp: FileStamp | undefined,
    bytes?: Buffer,
  ) {
    this.flags = header.flags;
    this.presentCountValue = header.presentBands;
    this.logTrusted =
      (header.flags & STAT_CACHE_FLAG_LOG_TRUSTED) === 0 ? undefined : { bytes: header.logTrustedBytes, crc: header.logTrustedCrc };
    this.logBandsAtLeast = header.logBandsAtLeast;
    this.savedGeneration = header.statGeneration;
    this.fileBytes = fileBytes;
    this.bytes = bytes;
  }

  /** The trusted prefix of changes.log as loaded (see the header notes), if any. */
  readonly logTrusted: LogPoint | undefined;
  /** Lower bound on the distinct bands in changes.log as loaded (0 = unknown). */
  readonly logBandsAtLeast: number;
  /** The generation of the last save as loaded: never above the state's (the state is written first). */
  readonly savedGeneration: number;

  /**
   * Loads the header; a missing file, a bad header, another epoch's file, or something that is no
   * regular file or is larger than `maxBytes` (it would be read whole by a full audit) loads as
   * `undefined`: tracking was lost.
   */
  static async load(path: string, epochTag: number, writable: boolean, maxBytes = Number.MAX_SAFE_INTEGER): Promise<StatCache | undefined> {
    if ((await checkTrackingFile(path, maxBytes)).kind !== 'ok') return undefined;
    let handle: FileHandle;
    try {
      handle = await openTrackingFile(path, writable ? constants.O_RDWR : constants.O_RDONLY);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ELOOP' || code === 'SBM_CORRUPT') return undefined;
      throw error;
    }
    try {
      const { size } = await handle.stat();
      const bytes = Buffer.alloc(STAT_CACHE_HEADER_SIZE);
      await readFully(handle, bytes, 0);
      // Magic, version and checksum before any field is decoded: a damaged header is a missing cache.
      const headerValid =
        STAT_CACHE_HEADER.matches(bytes) && readHeaderCrc(bytes, 0) === crc32(bytes, HEADER_CRC_FROM, STAT_CACHE_HEADER_SIZE);
      const header = headerValid ? STAT_CACHE_HEADER.decode(bytes) : undefined;
      if (header === undefined || header.epochTag !== epochTag) {
        await handle.close();
        return undefined;
      }
      const dirStamp =
        header.dirIno === 0 ? undefined : { ino: header.dirIno, size: 0, mtimeUs: header.dirMtimeUs, ctimeUs: header.dirCtimeUs };
      return new StatCache(handle, writable, header, Math.max(size, STAT_CACHE_HEADER_SIZE), epochTag, dirStamp);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Creates an empty cache file for a new epoch (caller renames it into place). */
  static async create(path: string, epochTag: number): Promise<StatCache> {
    const handle = await open(path, 'wx+', 0o644); // a fresh staged name: never someone else's file
    const empty = {
      flags: STAT_CACHE_FLAG_PRESENT_COUNT,
      presentBands: 0,
      logTrustedBytes: 0,
      logTrustedCrc: 0,
      logBandsAtLeast: 0,
      statGeneration: 0,
    };
    return new StatCache(handle, true, empty, STAT_CACHE_HEADER_SIZE, epochTag, undefined, Buffer.alloc(STAT_CACHE_HEADER_SIZE));
  }

  slot(bandIndex: number): SlotEntry {
    const located = this.validSlot(bandIndex);
    if (located === undefined) return UNKNOWN;
    const [bytes, offset] = located;
    const state = readSlotState(bytes, offset);
    if (state === SLOT_ABSENT) return { state: 'absent', statGeneration: readSlotStatGeneration(bytes, offset) };
    if (state !== SLOT_PRESENT) return UNKNOWN;
    return {
      state: 'present',
      statGeneration: readSlotStatGeneration(bytes, offset),
      stamp: {
        ino: readSlotIno(bytes, offset),
        size: readSlotSize(bytes, offset),
        mtimeUs: readSlotMtimeUs(bytes, offset),
        ctimeUs: readSlotCtimeUs(bytes, offset),
      },
    };
  }

  /** slot(bandIndex).statGeneration without building the entry (-1 = unknown). */
  statGenerationOf(bandIndex: number): number {
    const located = this.validSlot(bandIndex);
    if (located === undefined) return -1;
    const state = readSlotState(located[0], located[1]);
    return state === SLOT_PRESENT || state === SLOT_ABSENT ? readSlotStatGeneration(located[0], located[1]) : -1;
  }

  /** Band indexes whose slot says the band exists. Reads every slot: O(bands), used by full audits. */
  presentBands(): number[] {
    const bytes = this.loadAll();
    const list: number[] = [];
    const slots = Math.floor((bytes.length - STAT_CACHE_HEADER_SIZE) / STAT_SLOT_SIZE);
    for (let bandIndex = 0; bandIndex < slots; bandIndex++) {
      const offset = STAT_CACHE_HEADER_SIZE + bandIndex * STAT_SLOT_SIZE;
      if (readSlotState(bytes, offset) === SLOT_PRESENT && this.validSlot(bandIndex) !== undefined) list.push(bandIndex);
    }
    return list;
  }

  /**
   * How many slots say "present": from the header when it knows, else by reading every slot
   * (without checksums). An estimate for choosing the audit, never for deciding what changed.
   */
  presentCount(): number {
    if ((this.flags & STAT_CACHE_FLAG_PRESENT_COUNT) === 0) {
      const bytes = this.loadAll();
      let count = 0;
      for (let offset = STAT_CACHE_HEADER_SIZE; offset + STAT_SLOT_SIZE <= bytes.length; offset += STAT_SLOT_SIZE) {
        if (readSlotState(bytes, offset) === SLOT_PRESENT) count++;
      }
      this.presentCountValue = count;
      this.flags |= STAT_CACHE_FLAG_PRESENT_COUNT;
    }
    return this.presentCountValue;
  }

  /** Records stamps (undefined = absent) for bands, then the folder stamp; fdatasyncs once (three times with distrustFirst). */
  async save(
    entries: ReadonlyMap<number, FileStamp | undefined>,
    dirStamp: FileStamp | undefined,
    statGeneration: number,
    options: SaveOptions,
  ): Promise<void> {
    if (!this.writable) throw new SbmError('SBM_INTERNAL', 'stat cache opened read-only was asked to save');
    const header = (logTrusted: LogPoint | undefined) => this.encodeHeader(dirStamp, statGeneration, logTrusted, options.logBandsAtLeast);
    if (options.distrustFirst === true && entries.size > 0) {
      await writeFully(this.handle, header(undefined), 0);
      await this.handle.datasync();
    }
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
      writeSlotCrc(slot, 0, crc32(slot, SLOT_CRC_FROM, STAT_SLOT_SIZE));
      const wasPresent = this.slotState(bandIndex) === SLOT_PRESENT;
      this.presentCountValue += (stamp === undefined ? 0 : 1) - (wasPresent ? 1 : 0);
      const offset = STAT_CACHE_HEADER_SIZE + bandIndex * STAT_SLOT_SIZE;
      await writeFully(this.handle, slot, offset);
      this.fileBytes = Math.max(this.fileBytes, offset + STAT_SLOT_SIZE);
      if (this.bytes !== undefined) {
        this.bytes = grown(this.bytes, offset + STAT_SLOT_SIZE);
        slot.copy(this.bytes, offset);
      }
    }
    if (options.distrustFirst === true && entries.size > 0) await this.handle.datasync();
    const finalHeader = header(options.logTrusted);
    if (this.bytes !== undefined) finalHeader.copy(this.bytes, 0);
    await writeFully(this.handle, finalHeader, 0);
    await this.handle.datasync();
    this.dirStamp = dirStamp;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private encodeHeader(
    dirStamp: FileStamp | undefined,
    statGeneration: number,
    logTrusted: LogPoint | undefined,
    logBandsAtLeast: number,
  ): Buffer {
    // A trusted point must fit its u32 field; a longer log is simply not trusted (full check on open).
    const trusted = logTrusted !== undefined && logTrusted.bytes <= 0xffffffff ? logTrusted : undefined;
    const countKnown =
      (this.flags & STAT_CACHE_FLAG_PRESENT_COUNT) !== 0 && this.presentCountValue >= 0 && this.presentCountValue <= SAFE_HIGH_WORD_MAX;
    const flags = (trusted === undefined ? 0 : STAT_CACHE_FLAG_LOG_TRUSTED) | (countKnown ? STAT_CACHE_FLAG_PRESENT_COUNT : 0);
    const header = STAT_CACHE_HEADER.encode({
      magic: STAT_CACHE_MAGIC,
      crc: 0,
      epochTag: this.epochTag,
      version: STAT_CACHE_VERSION,
      flags,
      dirIno: dirStamp?.ino ?? 0,
      dirMtimeUs: dirStamp?.mtimeUs ?? 0,
      dirCtimeUs: dirStamp?.ctimeUs ?? 0,
      statGeneration,
      logTrustedBytes: trusted?.bytes ?? 0,
      logTrustedCrc: trusted?.crc ?? 0,
      presentBands: countKnown ? this.presentCountValue : 0,
      logBandsAtLeast: Math.min(logBandsAtLeast, SAFE_HIGH_WORD_MAX),
    });
    writeHeaderCrc(header, 0, crc32(header, HEADER_CRC_FROM, STAT_CACHE_HEADER_SIZE));
    return header;
  }

  /** Reads the whole file once (synchronously: callers are about to look at every slot). */
  private loadAll(): Buffer {
    if (this.bytes === undefined) {
      const bytes = Buffer.allocUnsafe(this.fileBytes);
      readFullySync(this.handle.fd, bytes, 0); // zero-fills past the end of the file
      this.bytes = bytes;
    }
    return this.bytes;
  }

  /** The state word of a slot, checksum unchecked (for the present count). */
  private slotState(bandIndex: number): number {
    const offset = STAT_CACHE_HEADER_SIZE + bandIndex * STAT_SLOT_SIZE;
    if (offset + STAT_SLOT_SIZE > this.fileBytes) return 0;
    if (this.bytes !== undefined) return readSlotState(this.bytes, offset);
    readFullySync(this.handle.fd, this.scratch, offset);
    return readSlotState(this.scratch, 0);
  }

  /** The slot's bytes and offset in them when the slot lies inside the file and its checksum holds. */
  private validSlot(bandIndex: number): [Buffer, number] | undefined {
    let offset = STAT_CACHE_HEADER_SIZE + bandIndex * STAT_SLOT_SIZE;
    if (offset + STAT_SLOT_SIZE > this.fileBytes) return undefined;
    if (this.bytes === undefined && ++this.singleReads > SINGLE_SLOT_READS_MAX) this.loadAll();
    let bytes = this.bytes;
    if (bytes === undefined) {
      // One small positional read from the page cache: cheaper than a thread-pool round trip.
      bytes = this.scratch;
      readFullySync(this.handle.fd, bytes, offset);
      offset = 0;
    }
    return readSlotCrc(bytes, offset) === crc32(bytes, offset + SLOT_CRC_FROM, offset + STAT_SLOT_SIZE) ? [bytes, offset] : undefined;
  }
}

/** The most bytes a stat cache of `bandCount` bands may hold (slots of bands cut by a shrink stay; at least 2^21 slots). */
export function statCacheMaxBytes(bandCount: number): number {
  return STAT_CACHE_HEADER_SIZE + STAT_SLOT_SIZE * Math.max(bandCount, 1 << 21);
}

/** Largest high half of a u64 that is a safe integer ((2^53 - 1) >> 32): see the header notes on +52 and +60. */
const SAFE_HIGH_WORD_MAX = 0x1fffff;

/** A caller going through more slots than this (an audit, a crash recovery) gets one whole-file read. */
const SINGLE_SLOT_READS_MAX = 256;

function grown(bytes: Buffer, length: number): Buffer {
  if (length <= bytes.length) return bytes;
  const larger = Buffer.alloc(Math.max(length, bytes.length * 2));
  bytes.copy(larger);
  return larger;
}
