// What `sbm info` lists besides the disk: internal snapshots and persistent dirty bitmaps. Both
// are read (bounded, every entry inside the file) at open so damage is reported there; the
// active disk never reads them.
//
//   snapshot entry: 40 fixed bytes, extra data, id string, name, padding to 8
//   bitmap directory entry: 24 fixed bytes, extra data, name, padding to 8

import type { FileHandle } from 'node:fs/promises';
import { defineLayout } from '../../lib/binary-layout.js';
import { SbmError } from '../../lib/errors.js';
import {
  QCOW2_AUTOCLEAR_BITMAPS,
  QCOW2_MAX_BITMAPS,
  QCOW2_MAX_BITMAP_DIRECTORY_SIZE,
  QCOW_MAX_SNAPSHOTS_SIZE_BYTES,
  QCOW_MAX_SNAPSHOT_EXTRA_DATA,
} from './constants.js';
import type { Qcow2Header } from './qcow2-header.js';
import { readExactly } from './read-exactly.js';

const SNAPSHOT_ENTRY = defineLayout('qcow2 snapshot entry', 40, 'be', [
  { name: 'l1TableOffset', offset: 0, type: 'u64' },
  { name: 'l1Size', offset: 8, type: 'u32' },
  { name: 'idStrSize', offset: 12, type: 'u16' },
  { name: 'nameSize', offset: 14, type: 'u16' },
  { name: 'dateSeconds', offset: 16, type: 'u32' },
  { name: 'dateNanoseconds', offset: 20, type: 'u32' },
  { name: 'vmClockNanoseconds', offset: 24, type: 'u64' },
  { name: 'vmStateSize', offset: 32, type: 'u32' },
  { name: 'extraDataSize', offset: 36, type: 'u32' },
] as const);

/** The extra data qemu writes (version 3 needs at least these 16 bytes). */
const SNAPSHOT_EXTRA = defineLayout('qcow2 snapshot extra data', 16, 'be', [
  { name: 'vmStateSizeLarge', offset: 0, type: 'u64' },
  { name: 'diskSize', offset: 8, type: 'u64' },
] as const);

const BITMAP_DIRECTORY_ENTRY = defineLayout('qcow2 bitmap directory entry', 24, 'be', [
  { name: 'bitmapTableOffset', offset: 0, type: 'u64' },
  { name: 'bitmapTableSize', offset: 8, type: 'u32' },
  { name: 'flags', offset: 12, type: 'u32' },
  { name: 'type', offset: 16, type: 'u8' },
  { name: 'granularityBits', offset: 17, type: 'u8' },
  { name: 'nameSize', offset: 18, type: 'u16' },
  { name: 'extraDataSize', offset: 20, type: 'u32' },
] as const);

export interface SnapshotInfo {
  readonly id: string;
  readonly name: string;
  /** ISO-8601 UTC. */
  readonly date: string;
  readonly diskSizeBytes?: number;
}

export interface BitmapInfo {
  readonly name: string;
  readonly granularityBytes: number;
  readonly inUse: boolean;
}

const pad8 = (value: number): number => Math.ceil(value / 8) * 8;

export async function readSnapshots(handle: FileHandle, header: Qcow2Header, fileSize: number, path: string): Promise<SnapshotInfo[]> {
  const snapshots: SnapshotInfo[] = [];
  let position = header.snapshotsOffset;
  for (let index = 0; index < header.nbSnapshots; index++) {
    if (position - header.snapshotsOffset > QCOW_MAX_SNAPSHOTS_SIZE_BYTES) throw corrupt(path, 'snapshot table is larger than 64 MiB');
    const fixed = Buffer.alloc(SNAPSHOT_ENTRY.sizeBytes);
    await readExactly(handle, fixed, position, path, `snapshot ${index}`);
    const entry = SNAPSHOT_ENTRY.decode(fixed, 0, path);
    if (entry.extraDataSize > QCOW_MAX_SNAPSHOT_EXTRA_DATA)
      throw corrupt(path, `snapshot ${index} has ${entry.extraDataSize} bytes of extra data (at most 1024)`);
    const variable = entry.extraDataSize + entry.idStrSize + entry.nameSize;
    if (position + SNAPSHOT_ENTRY.sizeBytes + variable > fileSize) throw corrupt(path, `snapshot ${index} runs past the end of the file`);
    const rest = Buffer.alloc(variable);
    await readExactly(handle, rest, position + SNAPSHOT_ENTRY.sizeBytes, path, `snapshot ${index}`);
    const extra = entry.extraDataSize >= SNAPSHOT_EXTRA.sizeBytes ? SNAPSHOT_EXTRA.decode(rest, 0, path) : undefined;
    const id = printable(rest.subarray(entry.extraDataSize, entry.extraDataSize + entry.idStrSize));
    const name = printable(rest.subarray(entry.extraDataSize + entry.idStrSize));
    const diskSize = extra === undefined || extra.diskSize > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(extra.diskSize);
    snapshots.push({
      id,
      name,
      date: new Date(entry.dateSeconds * 1000).toISOString(),
      ...(diskSize === undefined ? {} : { diskSizeBytes: diskSize }),
    });
    position += pad8(SNAPSHOT_ENTRY.sizeBytes + variable);
  }
  return snapshots;
}

export async function readBitmaps(handle: FileHandle, header: Qcow2Header, fileSize: number, path: string): Promise<BitmapInfo[]> {
  const extension = header.extensions.bitmaps;
  // Without the autoclear bit the directory is stale (an older qemu changed the disk): ignore it.
  if (extension === undefined || (header.autoclearFeatures & QCOW2_AUTOCLEAR_BITMAPS) === 0n) return [];
  const { nbBitmaps, directorySize, directoryOffset } = extension;
  if (nbBitmaps === 0 || nbBitmaps > QCOW2_MAX_BITMAPS) throw corrupt(path, `bitmaps extension counts ${nbBitmaps} bitmaps (1..65535)`);
  if (
    directorySize > BigInt(QCOW2_MAX_BITMAP_DIRECTORY_SIZE) ||
    directoryOffset % BigInt(header.clusterSize) !== 0n ||
    directoryOffset + directorySize > BigInt(fileSize)
  ) {
    throw corrupt(
      path,
      `bitmap directory (${directorySize} bytes at ${directoryOffset}) is too large, misaligned or past the end of the file`,
    );
  }
  const directory = Buffer.alloc(Number(directorySize));
  await readExactly(handle, directory, Number(directoryOffset), path, 'bitmap directory');
  const bitmaps: BitmapInfo[] = [];
  let position = 0;
  for (let index = 0; index < nbBitmaps; index++) {
    if (position + BITMAP_DIRECTORY_ENTRY.sizeBytes > directory.length) throw corrupt(path, `bitmap directory ends before bitmap ${index}`);
    const entry = BITMAP_DIRECTORY_ENTRY.decode(directory, position, path);
    const nameStart = position + BITMAP_DIRECTORY_ENTRY.sizeBytes + entry.extraDataSize;
    if (nameStart + entry.nameSize > directory.length) throw corrupt(path, `bitmap ${index} runs past the bitmap directory`);
    bitmaps.push({
      name: printable(directory.subarray(nameStart, nameStart + entry.nameSize)),
      granularityBytes: 2 ** entry.granularityBits,
      inUse: (entry.flags & 1) !== 0,
    });
    position = pad8(nameStart + entry.nameSize);
  }
  return bitmaps;
}

/** Names are shown to users: control characters become "?". */
function printable(bytes: Buffer): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it replaces
  return bytes.toString('utf8').replace(/[\u0000-\u001f\u007f]/g, '?');
}

function corrupt(path: string, why: string): SbmError {
  return new SbmError('SBM_CORRUPT', `${path}: ${why}`, { path });
}
