// Band file work of a backup run: hashing, copying while hashing (one read), and hard-linking
// many unchanged bands.
//
// copyBandHashing: read the band whole (bands are small: 8 MiB by default) -> start the write on
// the thread pool and hash meanwhile (band-hasher.ts: on the main thread or a worker, whichever
// is free) -> fsync the new file once -> close. Given PendingSyncs, the fsync and close run in
// the background: the copy returns (freeing its slot and its band's memory) once the data is
// written, and the caller waits for the fsyncs before it counts the copies as stored. Without,
// the copy returns once fsynced.
// Not webcrypto's digest for hashing: it copies the band, then queues behind the reads, writes
// and fsyncs for the thread pool's 4 threads.
// Bands larger than WHOLE_BAND_MAX_BYTES stream in COPY_CHUNK_BYTES chunks instead.
// Copies leave every all-zero HOLE_BYTES block as a hole (the file is sized first), as the
// engine does in the bundle itself: a changed band of a half-empty disk costs half the writes.

import { open, type FileHandle } from 'node:fs/promises';
import { constants, linkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { SbmError } from '../errors.js';
import { copyFileDurably } from '../fs/atomic-write.js';
import { isNotRegularFile, openRegular } from '../fs/safe-open.js';
import { readFully, writeFully } from '../fs/read-fully.js';
import { mapLimit } from '../map-limit.js';
import type { PendingSyncs } from '../fs/pending-syncs.js';
import { isAllZero, nonZeroBlockRuns } from '../block-device.js';
import { inSyncRuns } from '../sync-runs.js';
import { sha256Of } from './band-hasher.js';
import type { BandRecord } from './backup-manifest.js';

/** A band copied: its record, and the bytes of data written (the holes left cost none). */
export interface CopiedBand {
  readonly record: BandRecord;
  readonly bytesWritten: number;
}

const COPY_CHUNK_BYTES = 1024 * 1024;
/** Zero blocks of this size are left as holes; smaller ones are written (a hole that small saves little). */
const HOLE_BYTES = 64 * 1024;
/** Band copies in flight at once (each may hold a whole band in memory). */
export const COPY_CONCURRENCY = 4;
/**
 * Bands up to this size are read in one call and held whole while written and hashed. With
 * COPY_CONCURRENCY copies in flight that is at most 64 MiB of band data, so peak memory stays
 * bounded (< 256 MiB) whatever the band size; larger bands stream.
 */
const WHOLE_BAND_MAX_BYTES = 16 * 1024 * 1024;

/** Size and sha256 of a file. */
export async function hashFile(path: string): Promise<BandRecord> {
  const handle = await openBandForReading(path);
  try {
    const hash = createHash('sha256');
    const size = await streamFile(handle, (chunk) => hash.update(chunk));
    return { size, sha256: hash.digest('hex') };
  } finally {
    await handle.close();
  }
}

export interface CopyOptions {
  /** Where the new file's fsync goes; without, the copy waits for its own fsync. */
  readonly syncs?: PendingSyncs;
  /** Bands above this size stream instead of being held whole (tests lower it). */
  readonly wholeMaxBytes?: number;
}

/** Copies a band into a new file `to` while hashing it; the copy is fsynced before it counts. */
export async function copyBandHashing(from: string, to: string, options: CopyOptions = {}): Promise<CopiedBand> {
  const source = await openBandForReading(from);
  try {
    const data = await readWhole(source, options.wholeMaxBytes ?? WHOLE_BAND_MAX_BYTES);
    if (data === undefined) return await copyStreaming(source, to, options.syncs);
    try {
      return await writeNewBand(to, data, options.syncs);
    } finally {
      releaseBandBuffer(data); // written and hashed: writeNewBand waits for both, also when failing
    }
  } finally {
    await source.close();
  }
}

/** Writes `data` as the new file `to` (fsynced) and returns its record; hashes while the write runs. */
export async function writeNewBand(to: string, data: Buffer, syncs?: PendingSyncs): Promise<CopiedBand> {
  return writeNewFile(to, syncs, async (target) => {
    const writing = writeSkippingZeroBlocks(target, data);
    let sha256: string;
    let bytesWritten: number;
    try {
      sha256 = await sha256Of(data);
    } finally {
      bytesWritten = await writing;
    }
    return { record: { size: data.length, sha256 }, bytesWritten };
  });
}

/**
 * Creates `to` (never over an existing file), lets `write` fill it, then fsyncs and closes it:
 * in the background when `syncs` is given (see the top of the file), else before returning.
 */
async function writeNewFile(
  to: string,
  syncs: PendingSyncs | undefined,
  write: (target: FileHandle) => Promise<CopiedBand>,
): Promise<CopiedBand> {
  const target = await open(to, 'wx', 0o644);
  let copied: CopiedBand;
  try {
    copied = await write(target);
    if (syncs === undefined) await target.sync();
  } catch (error) {
    await target.close();
    throw error;
  }
  if (syncs === undefined) await target.close();
  else await syncs.add(target);
  return copied;
}

/**
 * Reads a whole band with its record, or undefined when it is too big to hold (see
 * WHOLE_BAND_MAX_BYTES). Give `data` back with releaseBandBuffer when done with it.
 */
export async function readBandHashing(
  path: string,
  wholeMaxBytes = WHOLE_BAND_MAX_BYTES,
): Promise<{ data: Buffer; record: BandRecord } | undefined> {
  const handle = await openBandForReading(path);
  try {
    const data = await readWhole(handle, wholeMaxBytes);
    return data === undefined ? undefined : { data, record: { size: data.length, sha256: await sha256Of(data) } };
  } finally {
    await handle.close();
  }
}

/**
 * Opens a band without following a symlink or blocking on a FIFO: a backup copies regular band
 * files only, never what a symlink in the bundle points at.
 */
export async function openBandForReading(path: string): Promise<FileHandle> {
  try {
    return (await openRegular(path, constants.O_RDONLY)).handle;
  } catch (error) {
    if (!isNotRegularFile(error)) throw error;
    throw new SbmError('SBM_BAD_BAND', `${path} is a ${error.kind}, not a regular file; it is not backed up (see sbm check)`, {
      path,
      kind: error.kind,
    });
  }
}

/**
 * The whole file (frozen: it cannot change while read), or undefined above `wholeMaxBytes`. In
 * shared memory, so a hash worker reads it without a copy (band-hasher.ts); give it back with
 * releaseBandBuffer once written and hashed.
 */
async function readWhole(handle: FileHandle, wholeMaxBytes: number): Promise<Buffer | undefined> {
  const { size } = await handle.stat();
  if (size > wholeMaxBytes) return undefined;
  const buffer = takeSharedBuffer(size);
  try {
    return buffer.subarray(0, await readFully(handle, buffer, 0));
  } catch (error) {
    releaseBandBuffer(buffer);
    throw error;
  }
}

/**
 * Shared-memory band buffers are reused, never dropped: V8 does not count shared memory toward
 * the pressure that triggers a collection, so a backup that dropped one per band grew by 8 MiB
 * per changed band (385 MiB for 50). Band files vary in size (one ends at its last written
 * byte), so buffers are made in powers of two from 1 MiB, and the smallest free one that fits is
 * taken: an 8 MiB buffer serves every band of the default size. One is kept per band that can be
 * in flight (copies and hash-compares).
 */
const freeSharedBuffers: Buffer[] = [];
const MAX_FREE_SHARED_BUFFERS = 2 * COPY_CONCURRENCY;
const MIN_SHARED_BUFFER_BYTES = 1024 * 1024;

function takeSharedBuffer(size: number): Buffer {
  let best = -1;
  freeSharedBuffers.forEach((buffer, index) => {
    if (buffer.length >= size && (best < 0 || buffer.length < (freeSharedBuffers[best] as Buffer).length)) best = index;
  });
  if (best >= 0) return (freeSharedBuffers.splice(best, 1)[0] as Buffer).subarray(0, size);
  let capacity = MIN_SHARED_BUFFER_BYTES;
  while (capacity < size) capacity *= 2;
  return Buffer.from(new SharedArrayBuffer(capacity)).subarray(0, size);
}

/** Gives a band buffer from copyBandHashing's or readBandHashing's read back for reuse. */
export function releaseBandBuffer(data: Buffer): void {
  if (!(data.buffer instanceof SharedArrayBuffer) || freeSharedBuffers.length >= MAX_FREE_SHARED_BUFFERS) return;
  freeSharedBuffers.push(Buffer.from(data.buffer));
}

/**
 * Hard-links each `[from, to]` pair synchronously in short runs (sync-runs.ts), yielding to the
 * event loop between runs so copies in flight progress. Copy mode, and an inode at its link
 * limit, copy instead (fsynced).
 */
export async function linkBands(pairs: ReadonlyArray<readonly [string, string]>, copyMode: boolean, onDone: () => void): Promise<void> {
  const copies: Array<readonly [string, string]> = copyMode ? [...pairs] : [];
  if (!copyMode) {
    await inSyncRuns(pairs, (pair) => {
      if (linkSyncOrLimit(pair[0], pair[1])) onDone();
      else copies.push(pair); // at the link limit: a fresh inode; later backups link to this one
    });
  }
  await mapLimit(copies, COPY_CONCURRENCY, async ([from, to]) => {
    await copyFileDurably(from, to);
    onDone();
  });
}

/** True when linked; false when the inode has too many links (the caller copies). */
function linkSyncOrLimit(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (error) {
    if (atLinkLimit(error, from)) return false;
    throw error;
  }
}

function atLinkLimit(error: unknown, from: string): boolean {
  const errno = (error as NodeJS.ErrnoException).code;
  if (errno === 'EMLINK') return true;
  if (errno === 'EPERM' || errno === 'ENOTSUP' || errno === 'EOPNOTSUPP' || errno === 'EXDEV') {
    throw new SbmError('SBM_NO_HARDLINKS', `the destination cannot hard-link ${basename(from)} (${errno}); use --copy`, { errno });
  }
  return false;
}

async function copyStreaming(source: FileHandle, to: string, syncs: PendingSyncs | undefined): Promise<CopiedBand> {
  return writeNewFile(to, syncs, async (target) => {
    const hash = createHash('sha256');
    let bytesWritten = 0;
    const size = await streamFile(source, async (chunk, position) => {
      hash.update(chunk);
      if (isAllZero(chunk)) return;
      await writeFully(target, chunk, position);
      bytesWritten += chunk.length;
    });
    await target.truncate(size); // a trailing zero chunk was not written
    return { record: { size, sha256: hash.digest('hex') }, bytesWritten };
  });
}

/**
 * Writes `data` at offset 0 of an empty file, skipping all-zero HOLE_BYTES blocks: the file is
 * sized first, so they read back as zeros. One write per run of data blocks.
 */
async function writeSkippingZeroBlocks(target: FileHandle, data: Buffer): Promise<number> {
  await target.truncate(data.length);
  let written = 0;
  for (const run of nonZeroBlockRuns(data, HOLE_BYTES)) {
    await writeFully(target, data.subarray(run.start, run.end), run.start);
    written += run.end - run.start;
  }
  return written;
}

async function streamFile(handle: FileHandle, onChunk: (chunk: Buffer, position: number) => unknown): Promise<number> {
  const buffer = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
  let position = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) return position;
    await onChunk(buffer.subarray(0, bytesRead), position);
    position += bytesRead;
  }
}
