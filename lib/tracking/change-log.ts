// .sbm/changes.log: the durable half of the tracker. Before a band's first change in a
// generation is acknowledged, a 32-byte record (generation, band) is appended and fdatasynced.
// Concurrent callers share one write + fdatasync (group commit): whoever arrives while a sync is
// running joins the next batch.
//
//   CHANGE_RECORD (32 bytes, little-endian)
//   +0 magic u32 "SBMC" | +4 crc32 u32 of bytes 8..31 | +8 epochTag u32 | +12 kind u16
//   +14 reserved u16 | +16 generation u64 | +24 bandIndex u64
//
// A crash can leave a torn tail (a partial or garbage last record): it is dropped on open. An
// invalid record followed by valid ones is damage, not a torn tail: the caller resets tracking.

import { open, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDirectory } from '../fs/atomic-write.js';
import { readFully, writeFully } from '../fs/read-fully.js';
import { checksum, defineTable } from './binary-table.js';
import { CHANGE_KIND_WRITE, CHANGE_RECORD_MAGIC, CHANGE_RECORD_SIZE } from './constants.js';

export const CHANGE_RECORD = defineTable('CHANGE_RECORD', CHANGE_RECORD_SIZE, [
  { name: 'magic', offset: 0, type: 'u32' },
  { name: 'crc', offset: 4, type: 'u32' },
  { name: 'epochTag', offset: 8, type: 'u32' },
  { name: 'kind', offset: 12, type: 'u16' },
  { name: 'reserved', offset: 14, type: 'u16' },
  { name: 'generation', offset: 16, type: 'u64' },
  { name: 'bandIndex', offset: 24, type: 'u64' },
] as const);

export function encodeChangeRecord(epochTag: number, generation: number, bandIndex: number, kind = CHANGE_KIND_WRITE): Buffer {
  const record = CHANGE_RECORD.encode({ magic: CHANGE_RECORD_MAGIC, crc: 0, epochTag, kind, reserved: 0, generation, bandIndex });
  record.writeUInt32LE(checksum(record, 8, CHANGE_RECORD_SIZE), 4);
  return record;
}

export interface LogScan {
  /** Highest generation with a record, per band. */
  readonly latest: Map<number, number>;
  readonly recordCount: number;
  /** Bytes of valid records from the start; anything past it is a torn tail. */
  readonly validBytes: number;
  /** An invalid record was followed by valid ones (damage, not a crash). */
  readonly damaged: boolean;
}

const readEpochTag = CHANGE_RECORD.reader('epochTag');
const readGeneration = CHANGE_RECORD.reader('generation');
const readBandIndex = CHANGE_RECORD.reader('bandIndex');

/** One pass over the log; reads fields in place (no per-record objects): it runs on every open. */
export function scanChangeLog(bytes: Buffer, epochTag: number): LogScan {
  const latest = new Map<number, number>();
  let recordCount = 0;
  let validBytes = 0;
  let damaged = false;
  let sawInvalid = false;
  for (let offset = 0; offset + CHANGE_RECORD_SIZE <= bytes.length; offset += CHANGE_RECORD_SIZE) {
    const valid = bytes.readUInt32LE(offset) === CHANGE_RECORD_MAGIC && bytes.readUInt32LE(offset + 4) === checksum(bytes, offset + 8, offset + CHANGE_RECORD_SIZE);
    if (!valid) {
      sawInvalid = true;
      continue;
    }
    if (sawInvalid) damaged = true;
    if (readEpochTag(bytes, offset) !== epochTag) {
      damaged = true; // a record of another epoch: the log does not belong to this state
      continue;
    }
    const generation = readGeneration(bytes, offset);
    const bandIndex = readBandIndex(bytes, offset);
    recordCount++;
    if (!sawInvalid) validBytes = offset + CHANGE_RECORD_SIZE;
    const known = latest.get(bandIndex);
    if (known === undefined || known < generation) latest.set(bandIndex, generation);
  }
  return { latest, recordCount, validBytes, damaged };
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

  private constructor(
    private readonly handle: FileHandle,
    sizeBytes: number,
  ) {
    this.sizeBytes = sizeBytes;
  }

  /** Reads the whole log (missing = empty). */
  static async read(path: string): Promise<Buffer> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
      throw error;
    }
    try {
      const { size } = await handle.stat();
      const bytes = Buffer.alloc(size);
      await readFully(handle, bytes, 0);
      return bytes;
    } finally {
      await handle.close();
    }
  }

  /** Opens for appending after `validBytes`, cutting a torn tail off first. */
  static async openForAppend(path: string, validBytes: number): Promise<ChangeLog> {
    const handle = await open(path, 'a+').then(async (probe) => {
      await probe.close();
      return open(path, 'r+');
    });
    const { size } = await handle.stat();
    if (size !== validBytes) {
      await handle.truncate(validBytes);
      await handle.datasync();
    }
    return new ChangeLog(handle, validBytes);
  }

  /** Writes a fresh log holding `records` (tmp + fsync + rename + fsync dir). */
  static async rewrite(path: string, tmpDir: string, records: Buffer): Promise<void> {
    const staged = join(tmpDir, `changes.log.${randomBytes(6).toString('hex')}`);
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
        // Positional write at the last good end: a failed earlier attempt is overwritten.
        await writeFully(this.handle, bytes, this.sizeBytes);
        await this.handle.datasync();
        this.sizeBytes += bytes.length;
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
    this.syncing = false;
  }
}
