// Writes a dynamic VHDX ([MS-VHDX] 2.1), laid out as qemu-img lays out a new image:
//
//   0        header section: identifier, headers 1 and 2, region tables 1 and 2 (vhdx-metadata-writer.ts)
//   1 MiB    log, 1 MiB, empty (LogGuid zero: nothing to replay)
//   2 MiB    BAT region: one u64 per payload block, a sector-bitmap entry after every chunkRatio
//            payload entries (chunkRatio = 2^23 * 512 / blockSize = 128 for 32 MiB blocks)
//   ...      metadata region, 1 MiB
//   ...      payload blocks of 32 MiB (Hyper-V's default), 1 MiB-aligned, in disk order
//
// A block holding any non-zero byte is FULLY_PRESENT at its file offset; holes and all-zero blocks
// are PAYLOAD_BLOCK_ZERO, which readers MUST return as zeros (NOT_PRESENT would leave a dynamic
// disk's contents undefined) and which takes no file space. Sector-bitmap entries stay
// SB_BLOCK_NOT_PRESENT, as a non-differencing disk requires. Only a block's non-zero runs are
// written; the rest is a hole of the output file. The BAT is written a page at a time as the walk
// passes it and the header section last, so memory stays bounded whatever the disk size.

import type { FileHandle } from 'node:fs/promises';
import type { BlockDevice } from '../../lib/block-device.js';
import type { CopyOptions } from '../../lib/copy-device.js';
import { SbmError } from '../../lib/errors.js';
import { writeFully } from '../../lib/fs/read-fully.js';
import { EntryPages } from '../entry-pages.js';
import { type RunWalkStats, nonZeroRuns } from '../nonzero-runs.js';
import {
  BAT_FILE_OFFSET_SHIFT,
  HEADER_SECTION_SIZE,
  MAX_VIRTUAL_DISK_SIZE,
  MiB,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_ZERO,
  SB_BLOCK_NOT_PRESENT,
  SECTORS_PER_BITMAP_BLOCK,
  VHDX_WRITE_BLOCK_SIZE,
  VHDX_WRITE_LOG_SIZE,
  VHDX_WRITE_SECTOR_SIZE,
} from './constants.js';
import { BAT_ENTRY } from './layouts.js';
import { type VhdxPlan, encodeHeaderSection, encodeMetadataRegion } from './vhdx-metadata-writer.js';

export interface VhdxWritePlan extends VhdxPlan {
  readonly chunkRatio: number;
  readonly payloadBlocks: number;
  readonly batEntries: number;
  /** File offset of the first payload block. */
  readonly dataStart: number;
}

const alignUp = (value: number, alignment: number): number => Math.ceil(value / alignment) * alignment;
/** MiB units held by the low word of a BAT entry (bits 20-31); the rest go in the high word. */
const LOW_WORD_MIB = 2 ** (32 - BAT_FILE_OFFSET_SHIFT);
const writeLow = BAT_ENTRY.writer('low');
const writeHigh = BAT_ENTRY.writer('high');

export function vhdxWritePlan(sizeBytes: number, path: string): VhdxWritePlan {
  const virtualDiskSize = alignUp(sizeBytes, VHDX_WRITE_SECTOR_SIZE);
  if (virtualDiskSize > MAX_VIRTUAL_DISK_SIZE) {
    throw new SbmError('SBM_BAD_SIZE', `${path}: a VHDX holds at most 64 TiB; the source is ${sizeBytes} bytes`, { path, sizeBytes });
  }
  const blockSize = VHDX_WRITE_BLOCK_SIZE;
  const chunkRatio = (SECTORS_PER_BITMAP_BLOCK * VHDX_WRITE_SECTOR_SIZE) / blockSize;
  const payloadBlocks = Math.ceil(virtualDiskSize / blockSize);
  const batEntries = payloadBlocks === 0 ? 0 : payloadBlocks + Math.floor((payloadBlocks - 1) / chunkRatio);
  const log = { fileOffset: HEADER_SECTION_SIZE, length: VHDX_WRITE_LOG_SIZE };
  const bat = { fileOffset: log.fileOffset + log.length, length: Math.max(MiB, alignUp(batEntries * BAT_ENTRY.sizeBytes, MiB)) };
  const metadata = { fileOffset: bat.fileOffset + bat.length, length: MiB };
  return {
    virtualDiskSize,
    blockSize,
    logicalSectorSize: VHDX_WRITE_SECTOR_SIZE,
    physicalSectorSize: VHDX_WRITE_SECTOR_SIZE,
    log,
    bat,
    metadata,
    chunkRatio,
    payloadBlocks,
    batEntries,
    dataStart: metadata.fileOffset + metadata.length,
  };
}

/** Writes the whole image into `handle` (an empty new file); returns the data bytes written. */
export async function writeDynamicVhdx(
  source: BlockDevice,
  handle: FileHandle,
  plan: VhdxWritePlan,
  copy: CopyOptions | undefined,
  stats: RunWalkStats,
): Promise<number> {
  const group = plan.chunkRatio + 1;
  const bat = new EntryPages(handle, plan.bat.fileOffset, BAT_ENTRY.sizeBytes, plan.batEntries, (page, first, count) => {
    for (let entry = 0; entry < count; entry++) {
      const isSectorBitmap = (first + entry) % group === plan.chunkRatio;
      writeLow(page, entry * BAT_ENTRY.sizeBytes, isSectorBitmap ? SB_BLOCK_NOT_PRESENT : PAYLOAD_BLOCK_ZERO);
    }
  });
  let allocated = 0;
  let lastBlock = -1;
  let bytesWritten = 0;
  let blockOffset = 0;
  for await (const run of nonZeroRuns(source, { copy, stats })) {
    // A run may cross block boundaries: each piece goes into its own block.
    for (let at = 0; at < run.data.length; ) {
      const offset = run.offset + at;
      const block = Math.floor(offset / plan.blockSize);
      const length = Math.min(run.data.length - at, (block + 1) * plan.blockSize - offset);
      if (block !== lastBlock) {
        blockOffset = plan.dataStart + allocated++ * plan.blockSize;
        const offsetMiB = blockOffset / MiB;
        await bat.set(block + Math.floor(block / plan.chunkRatio), (page, entryAt) => {
          writeLow(page, entryAt, (((offsetMiB % LOW_WORD_MIB) << BAT_FILE_OFFSET_SHIFT) | PAYLOAD_BLOCK_FULLY_PRESENT) >>> 0);
          writeHigh(page, entryAt, Math.floor(offsetMiB / LOW_WORD_MIB));
        });
        lastBlock = block;
      }
      await writeFully(handle, run.data.subarray(at, at + length), blockOffset + (offset % plan.blockSize));
      bytesWritten += length;
      at += length;
    }
  }
  await bat.finish();
  // Every present block is whole in the file (its unwritten parts holes), as qemu checks.
  await handle.truncate(plan.dataStart + allocated * plan.blockSize);
  await writeFully(handle, encodeMetadataRegion(plan), plan.metadata.fileOffset);
  await writeFully(handle, encodeHeaderSection(plan), 0);
  return bytesWritten;
}
