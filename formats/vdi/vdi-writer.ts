// Writes a dynamic ("normal") VDI in VirtualBox's own layout, which qemu reads as well:
//
//   0        pre-header (text, signature, version 1.1) + header, cbHeader 400 (LCHS zeroed)
//   1 MiB    block map @offBlocks: cBlocks u32 entries, 0xFFFFFFFF (free) unless the block holds data
//   offData  (the map rounded up to 1 MiB) 1 MiB data blocks, numbered in disk order
//
// Holes and blocks whose bytes are all zero stay free, as `qemu-img convert -O vdi` leaves them.
// Inside an allocated block only its non-zero runs are written; the rest is a hole of the output
// file and reads as zeros, so the image is sparse on disk too. The block map is written a page at
// a time as the walk passes it and the header last, so memory stays bounded whatever the size.

import { randomUUID } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { BlockDevice } from '../../lib/block-device.js';
import type { CopyOptions } from '../../lib/copy-device.js';
import { SbmError } from '../../lib/errors.js';
import { writeFully } from '../../lib/fs/read-fully.js';
import { EntryPages } from '../entry-pages.js';
import { type RunWalkStats, nonZeroRuns } from '../nonzero-runs.js';
import {
  VDI_DATA_ALIGN,
  VDI_HEADER_V1_PLUS_SIZE,
  VDI_HEADER_V1_SIZE,
  VDI_IMAGE_BLOCK_FREE,
  VDI_IMAGE_SIGNATURE,
  VDI_IMAGE_TYPE_NORMAL,
  VDI_IMAGE_VERSION_1_1,
  VDI_MAX_BLOCKS,
  VDI_PRE_HEADER_SIZE,
  VDI_SECTOR_SIZE,
  VDI_WRITE_BLOCK_SIZE,
} from './constants.js';
import { VDI_HEADER_LCHS, VDI_HEADER_V1, VDI_PRE_HEADER } from './layouts.js';

const FILE_INFO = '<<< sbm Virtual Disk Image >>>\n';
const MAP_ENTRY_BYTES = 4;

export interface VdiGeometry {
  /** The source size rounded up to whole sectors (VirtualBox refuses other sizes). */
  readonly cbDisk: number;
  readonly cBlocks: number;
  readonly offBlocks: number;
  readonly offData: number;
}

const alignUp = (value: number, alignment: number): number => Math.ceil(value / alignment) * alignment;

export function vdiGeometry(sizeBytes: number, path: string): VdiGeometry {
  const cbDisk = alignUp(sizeBytes, VDI_SECTOR_SIZE);
  const cBlocks = Math.ceil(cbDisk / VDI_WRITE_BLOCK_SIZE);
  if (cBlocks > VDI_MAX_BLOCKS) {
    throw new SbmError(
      'SBM_BAD_SIZE',
      `${path}: a VDI written by sbm holds at most ${VDI_MAX_BLOCKS} blocks of 1 MiB (16 TiB); the source is ${sizeBytes} bytes`,
      { path, sizeBytes },
    );
  }
  const offBlocks = alignUp(VDI_PRE_HEADER_SIZE + VDI_HEADER_V1_PLUS_SIZE, VDI_DATA_ALIGN);
  const offData = alignUp(offBlocks + cBlocks * MAP_ENTRY_BYTES, VDI_DATA_ALIGN);
  return { cbDisk, cBlocks, offBlocks, offData };
}

/** A random UUID in VirtualBox's RTUUID byte order (first three fields little-endian). */
function randomVdiUuid(): Buffer {
  const bytes = Buffer.from(randomUUID().replaceAll('-', ''), 'hex');
  bytes.subarray(0, 4).reverse();
  bytes.subarray(4, 6).reverse();
  bytes.subarray(6, 8).reverse();
  return bytes;
}

/** The first offData bytes' worth of headers: pre-header, v1.1 header and the LCHS tail. */
export function encodeVdiHeaders(geometry: VdiGeometry, blocksAllocated: number): Buffer {
  const out = Buffer.alloc(VDI_PRE_HEADER_SIZE + VDI_HEADER_V1_PLUS_SIZE);
  VDI_PRE_HEADER.encode(
    { fileInfo: Buffer.from(FILE_INFO, 'latin1'), signature: VDI_IMAGE_SIGNATURE, version: VDI_IMAGE_VERSION_1_1 },
    out,
    0,
  );
  VDI_HEADER_V1.encode(
    {
      cbHeader: VDI_HEADER_V1_PLUS_SIZE,
      imageType: VDI_IMAGE_TYPE_NORMAL,
      imageFlags: 0,
      offBlocks: geometry.offBlocks,
      offData: geometry.offData,
      cylinders: 0,
      heads: 0,
      sectors: 0,
      cbSector: VDI_SECTOR_SIZE,
      dummy: 0,
      cbDisk: BigInt(geometry.cbDisk),
      cbBlock: VDI_WRITE_BLOCK_SIZE,
      cbBlockExtra: 0,
      cBlocks: geometry.cBlocks,
      cBlocksAllocated: blocksAllocated,
      // VirtualBox refuses an image whose creator or modifier UUID is zero; link and parent stay zero.
      uuidCreate: randomVdiUuid(),
      uuidModify: randomVdiUuid(),
    },
    out,
    VDI_PRE_HEADER_SIZE,
  );
  VDI_HEADER_LCHS.encode({ cylinders: 0, heads: 0, sectors: 0, cbSector: VDI_SECTOR_SIZE }, out, VDI_PRE_HEADER_SIZE + VDI_HEADER_V1_SIZE);
  return out;
}

/** Writes the whole image into `handle` (an empty new file); returns the data bytes written. */
export async function writeDynamicVdi(
  source: BlockDevice,
  handle: FileHandle,
  geometry: VdiGeometry,
  copy: CopyOptions | undefined,
  stats: RunWalkStats,
): Promise<number> {
  const map = new EntryPages(handle, geometry.offBlocks, MAP_ENTRY_BYTES, geometry.cBlocks, (page, _first, count) => {
    for (let entry = 0; entry < count; entry++) page.writeUInt32LE(VDI_IMAGE_BLOCK_FREE, entry * MAP_ENTRY_BYTES);
  });
  let allocated = 0;
  let lastBlock = -1;
  let bytesWritten = 0;
  for await (const run of nonZeroRuns(source, { copy, stats })) {
    // A run may cross block boundaries: each piece goes into its own block.
    for (let at = 0; at < run.data.length; ) {
      const offset = run.offset + at;
      const block = Math.floor(offset / VDI_WRITE_BLOCK_SIZE);
      const length = Math.min(run.data.length - at, (block + 1) * VDI_WRITE_BLOCK_SIZE - offset);
      if (block !== lastBlock) {
        const index = allocated++;
        await map.set(block, (page, entryAt) => page.writeUInt32LE(index, entryAt));
        lastBlock = block;
      }
      const fileOffset = geometry.offData + (allocated - 1) * VDI_WRITE_BLOCK_SIZE + (offset % VDI_WRITE_BLOCK_SIZE);
      await writeFully(handle, run.data.subarray(at, at + length), fileOffset);
      bytesWritten += length;
      at += length;
    }
  }
  await map.finish();
  // Every allocated block is whole in the file (its unwritten tail a hole), as readers expect.
  await handle.truncate(geometry.offData + allocated * VDI_WRITE_BLOCK_SIZE);
  await writeFully(handle, encodeVdiHeaders(geometry, allocated), 0);
  return bytesWritten;
}
