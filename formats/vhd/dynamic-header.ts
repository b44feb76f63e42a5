// The dynamic disk header and its Block Allocation Table, validated whole at open.
//
//   BAT entry n (u32, big-endian): 0xFFFFFFFF = block n absent, else the sector where block n's
//   sector bitmap starts; its data follows the bitmap:
//     [ bitmap: roundup512(blockSize / 512 / 8) bytes ][ data: blockSize bytes ]
//
// Checks (qemu's and more): cookie, block size a power of two >= 512, the table covering the
// disk, the table inside the file, every block inside the file (qemu: "The image has been
// truncated"), no block over the footer copy, the header or the table, no two blocks overlapping.
// The header checksum is checked too, but a mismatch is only the warning SBM_VHD_HEADER_CHECKSUM:
// qemu never checks it, and images it opens must open here.

import { toSafeInteger } from '../../lib/binary-layout.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { VHD_BAT_UNUSED, VHD_DYNAMIC_HEADER_SIZE, VHD_FOOTER_SIZE, VHD_MAX_BAT_ENTRIES, VHD_SECTOR_SIZE } from './constants.js';
import { VHD_DYNAMIC_HEADER, vhdChecksum } from './layouts.js';
import type { VhdFile } from './vhd-file.js';
import type { VhdFooter } from './vhd-footer.js';

export type VhdDynamicHeaderValues = ReturnType<typeof VHD_DYNAMIC_HEADER.decode>;

export interface VhdDynamicDisk {
  readonly header: VhdDynamicHeaderValues;
  readonly headerOffset: number;
  readonly tableOffset: number;
  readonly blockSize: number;
  readonly bitmapBytes: number;
  /** Entries for the blocks that cover the disk (extra table entries are never read). */
  readonly bat: Uint32Array;
  readonly allocatedBlocks: number;
}

export async function readDynamicDisk(file: VhdFile, footer: VhdFooter, warn: (warning: SbmWarning) => void): Promise<VhdDynamicDisk> {
  const headerOffset = toSafeInteger(footer.values.dataOffset, 'VHD footer data offset', file.path);
  if (headerOffset + VHD_DYNAMIC_HEADER_SIZE > file.sizeBytes) {
    throw file.corrupt(`VHD dynamic header offset ${headerOffset} lies past the end of the file (${file.sizeBytes} bytes)`);
  }
  const raw = await file.read(VHD_DYNAMIC_HEADER_SIZE, headerOffset, 'VHD dynamic header');
  const header = VHD_DYNAMIC_HEADER.decode(raw, 0, file.path);
  if (vhdChecksum(raw, VHD_DYNAMIC_HEADER.offsetOf('checksum')) !== header.checksum) {
    warn({
      code: 'SBM_VHD_HEADER_CHECKSUM',
      message: `${file.path}: the dynamic disk header fails its checksum (qemu ignores it too); its fields are checked one by one`,
      data: { path: file.path },
    });
  }
  const { blockSize } = header;
  if (blockSize < VHD_SECTOR_SIZE || (blockSize & (blockSize - 1)) !== 0)
    throw file.corrupt(`VHD block size ${blockSize} is not a power of two of at least 512 bytes`);
  const blocksNeeded = Math.ceil(footer.sizeBytes / blockSize);
  if (header.maxTableEntries < blocksNeeded) {
    throw file.corrupt(
      `VHD block table has ${header.maxTableEntries} entries, too few for a ${footer.sizeBytes}-byte disk of ${blockSize}-byte blocks`,
    );
  }
  if (blocksNeeded > VHD_MAX_BAT_ENTRIES)
    throw file.unsupported(`VHD block table of ${blocksNeeded} entries is larger than sbm reads (${VHD_MAX_BAT_ENTRIES})`);
  const tableOffset = toSafeInteger(header.tableOffset, 'VHD block table offset', file.path);
  if (tableOffset + blocksNeeded * 4 > file.sizeBytes)
    throw file.corrupt(`VHD block table at ${tableOffset} (${blocksNeeded} entries) lies past the end of the file`);
  const tableBytes = await file.read(blocksNeeded * 4, tableOffset, 'VHD block table');
  const bat = new Uint32Array(blocksNeeded);
  for (let index = 0; index < blocksNeeded; index++) bat[index] = tableBytes.readUInt32BE(index * 4);
  const bitmapBytes = Math.ceil(blockSize / VHD_SECTOR_SIZE / 8 / VHD_SECTOR_SIZE) * VHD_SECTOR_SIZE;
  const metadata: Array<[number, number, string]> = [
    [0, VHD_FOOTER_SIZE, 'the footer copy'],
    [headerOffset, VHD_DYNAMIC_HEADER_SIZE, 'the dynamic header'],
    [tableOffset, header.maxTableEntries * 4, 'the block table'],
  ];
  const allocatedBlocks = checkBlocks(file, bat, bitmapBytes + blockSize, metadata);
  return { header, headerOffset, tableOffset, blockSize, bitmapBytes, bat, allocatedBlocks };
}

/** Every present block inside the file, clear of metadata and of each other; returns their count. */
function checkBlocks(file: VhdFile, bat: Uint32Array, span: number, metadata: ReadonlyArray<[number, number, string]>): number {
  const starts = new Float64Array(bat.length);
  let count = 0;
  for (let block = 0; block < bat.length; block++) {
    const entry = bat[block] as number;
    if (entry === VHD_BAT_UNUSED) continue;
    const start = entry * VHD_SECTOR_SIZE;
    if (start + span > file.sizeBytes) {
      throw file.corrupt(`VHD block ${block} at offset ${start} ends past the end of the file (${file.sizeBytes} bytes): truncated`, {
        block,
      });
    }
    for (const [at, length, what] of metadata) {
      if (start < at + length && at < start + span) throw file.corrupt(`VHD block ${block} at offset ${start} overlaps ${what}`, { block });
    }
    starts[count++] = start;
  }
  const sorted = starts.subarray(0, count).sort();
  for (let index = 1; index < sorted.length; index++) {
    if ((sorted[index] as number) < (sorted[index - 1] as number) + span)
      throw file.corrupt(`two VHD blocks overlap at offset ${sorted[index] as number}`);
  }
  return count;
}
