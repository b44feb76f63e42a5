// .sbm/changes.log: the durable half of the tracker. Before a band's first change in a
// generation is acknowledged, a 32-byte record (generation, band) is appended and fdatasynced.
// Concurrent callers share one write + fdatasync (group commit): whoever arrives while a sync is
// running joins the next batch. Record layout: change-record.ts.
//
// A crash can leave a torn tail (a partial or garbage last record): it is dropped on open. An
// invalid record followed by valid ones is damage, not a torn tail: the caller resets tracking.
//
// Open checks every record's checksum, except in a prefix the stat cache names as verified
// (length + CRC-32 of those bytes): one CRC over the prefix stands for all of its records. The log
// keeps the CRC of its valid bytes as it grows, so each save can name the current point.
//
// The same pass checks the state's high-water mark (tracking-state.ts): the CRC at the mark's
// offset falls out of the one CRC pass the trusted point needs anyway, so a log shorter than,
// or different from, what sbm made durable is found without hashing the log twice.

import { constants } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomTag } from '../fs/temp-name.js';
import { crc32 } from 'node:zlib';
import { fsyncDirectory } from '../fs/atomic-write.js';
import { writeFully } from '../fs/read-fully.js';
import { isValidRecord, readRecordBandIndex, readRecordEpochTag, readRecordGeneration } from './change-record.js';
import { CHANGE_RECORD_SIZE } from './constants.js';
import { LogIndex, keepHighest } from './log-index.js';
import type { LogPoint } from './stat-cache.js';
import { openTrackingFile, readTrackingFile, removeIfNotFile, withSpace } from './tracking-file.js';

/** A log larger than this is not one sbm wrote (it is read whole into memory): tracking was lost. */
export const CHANGE_LOG_MAX_BYTES = 1024 * 1024 * 1024;

export { CHANGE_RECORD, encodeChangeRecord } from './change-record.js';

export interface LogScan {
  /** Highest generation with a record, per band. */
  readonly index: LogIndex;
  readonly recordCount: number;
  /** Bytes of valid records from the start; anything past it is a torn tail. */
  readonly validBytes: number;
  /** CRC-32 of the valid bytes. */
  readonly validCrc: number;
  /** The stat cache's trusted point when the log still starts with it (its records were not re-checked). */
  readonly trustedPoint: LogPoint | undefined;
  /** An invalid record was followed by valid ones (damage, not a crash). */
  readonly damaged: boolean;
  /** The log still starts with the bytes the state's mark names (true when there is no mark). */
  readonly markHeld: boolean;
}

/** CRC-32 of a byte range, continuing from `previous` (zlib's: fast on large ranges). */
export function logCrc(bytes: Uint8Array, previous = 0): number {
  return crc32(bytes, previous) >>> 0;
}

/**
 * One pass over the log; reads fields in place (no per-record objects): it runs on every open.
 * `trusted` is the stat cache's verified point: when the log still starts with exactly those
 * bytes, their records are not checked one by one (nor indexed until a question needs it).
 */
export function scanChangeLog(bytes: Buffer, epochTag: number, trusted?: LogPoint, mark?: LogPoint): LogScan {
  const prefixCrcs = crcsAt(bytes, [trusted?.bytes, mark?.bytes]);
  const matched = trusted !== undefined && trusted.bytes % CHANGE_RECORD_SIZE === 0 && prefixCrcs.get(trusted.bytes) === trusted.crc;
  const markHeld = mark === undefined || prefixCrcs.get(mark.bytes) === mark.crc;
  const start = matched ? trusted.bytes : 0;
  const recent = new Map<number, number>();
  let recordCount = start / CHANGE_RECORD_SIZE;
  let validBytes = start;
  let damaged = false;
  let sawInvalid = false;
  for (let offset = start; offset + CHANGE_RECORD_SIZE <= bytes.length; offset += CHANGE_RECORD_SIZE) {
    if (!isValidRecord(bytes, offset)) {
      sawInvalid = true;
      continue;
    }
    if (sawInvalid) damaged = true;
    if (readRecordEpochTag(bytes, offset) !== epochTag) {
      damaged = true; // a record of another epoch: the log does not belong to this state
      continue;
    }
    const generation = readRecordGeneration(bytes, offset);
    const bandIndex = readRecordBandIndex(bytes, offset);
    recordCount++;
    if (!sawInvalid) validBytes = offset + CHANGE_RECORD_SIZE;
    keepHighest(recent, bandIndex, generation);
  }
  // Continue from the longest prefix whose CRC is already known instead of hashing it again.
  let from = 0;
  let crc = 0;
  for (const [cut, value] of prefixCrcs) {
    if (cut <= validBytes && cut >= from) [from, crc] = [cut, value];
  }
  const validCrc = logCrc(bytes.subarray(from, validBytes), crc);
  const trustedPoint = matched ? trusted : undefined;
  return { index: new LogIndex(bytes.subarray(0, start), recent), recordCount, validBytes, validCrc, trustedPoint, damaged, markHeld };
}

/** CRC-32 of bytes [0, cut) for each cut inside `bytes`, in one pass. */
function crcsAt(bytes: Buffer, cuts: ReadonlyArray<number | undefined>): Map<number, number> {
  const inside = cuts.filter((cut): cut is number => cut !== undefined && cut >= 0 && cut <= bytes.length).sort((a, b) => a - b);
  const found = new Map<number, number>();
  let at = 0;
  let crc = 0;
  for (const cut of inside) {
    crc = logCrc(bytes.subarray(at, cut), crc);
    at = cut;
    found.set(cut, crc);
  }
  return found;
}

interface Pending {
  readonly bytes: Buffer;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class ChangeLog {
  private pending: Pending[] = [];
  private syncing = false;
  private sizeBytes: number;
  /** CRC-32 of the first sizeBytes (undefined when the log was opened without it). */
  private crc: number | undefined;

  private constructor(
    private readonly handle: FileHandle,
    sizeBytes: number,
    crc: number | undefined,
    private readonly sbmDir: string,
  ) {
    this.sizeBytes = sizeBytes;
    this.crc = crc;
  }

  /** The durable length and its CRC-32: the point a stat-cache save can name as verified. */
  point(): LogPoint | undefined {
    return this.crc === undefined ? undefined : { bytes: this.sizeBytes, crc: this.crc };
  }

  /** Reads the whole log (missing = empty), or says why what is there cannot be a log. */
  static async read(path: string): Promise<{ bytes: Buffer; problem?: undefined } | { bytes: Buffer; problem: string }> {
    const read = await readTrackingFile(path, CHANGE_LOG_MAX_BYTES);
    if (read.kind === 'ok') return { bytes: read.bytes };
    if (read.kind === 'missing') return { bytes: Buffer.alloc(0) };
    return { bytes: Buffer.alloc(0), problem: `change log is a ${read.reason}` };
  }

  /** Opens for appending after `validBytes` (whose CRC-32 is `validCrc`), cutting a torn tail off first. */
  static async openForAppend(path: string, validBytes: number, validCrc: number, sbmDir: string): Promise<ChangeLog> {
    const handle = await openTrackingFile(path, constants.O_RDWR | constants.O_CREAT);
    const { size } = await handle.stat();
    if (size !== validBytes) {
      await handle.truncate(validBytes);
      await handle.datasync();
    }
    return new ChangeLog(handle, validBytes, validCrc, sbmDir);
  }

  /** Writes a fresh log holding `records` (tmp + fsync + rename + fsync dir). */
  static async rewrite(path: string, tmpDir: string, records: Buffer): Promise<void> {
    await removeIfNotFile(path); // a folder there would make the rename fail
    const staged = join(tmpDir, `changes.log.${randomTag()}`);
    const handle = await open(staged, 'wx', 0o644);
    try {
      await writeFully(handle, records, 0);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(staged, path);
    await fsyncDirectory(join(path, '..'));
  }

  /** Appends one record; resolves once it is durable. Concurrent calls share one fdatasync. */
  append(record: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ bytes: record, resolve, reject });
      if (!this.syncing) void this.drain();
    });
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private async drain(): Promise<void> {
    this.syncing = true;
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const bytes = Buffer.concat(batch.map((item) => item.bytes));
      try {
        // Positional write at the last good end: a failed earlier attempt is overwritten. On a
        // full filesystem the reserve makes room: a trim, which frees space, must be recordable.
        await withSpace(this.sbmDir, 'record a band change', async () => {
          await writeFully(this.handle, bytes, this.sizeBytes);
          await this.handle.datasync();
        });
        this.sizeBytes += bytes.length;
        if (this.crc !== undefined) this.crc = logCrc(bytes, this.crc);
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
    this.syncing = false;
  }
}
