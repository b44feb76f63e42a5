// The VDI header (v1.1 only) and block map, validated whole at open.
//
// Checks: signature, version 1.1 (VirtualBox's legacy v0 and any other version are refused by
// name), cbHeader >= 384, a known image type (undo images, which VirtualBox no longer makes, are
// refused), block size a power of two in 512 B..128 MiB, block extra 0 or a power of two, disk
// size > 0 with cBlocks * cbBlock covering it, the map and the data inside the file and clear of
// the header, and every allocated entry below cBlocks, used once, its block inside the file.

import { toSafeInteger } from '../../lib/binary-layout.js';
import type { SbmWarning } from '../../lib/warnings.js';
import {
  VDI_HEADER_V1_SIZE,
  VDI_IMAGE_BLOCK_FREE,
  VDI_IMAGE_BLOCK_ZERO,
  VDI_IMAGE_TYPE_DIFF,
  VDI_IMAGE_TYPE_FIXED,
  VDI_IMAGE_TYPE_NORMAL,
  VDI_IMAGE_TYPE_UNDO,
  VDI_IMAGE_VERSION_1_1,
  VDI_MAX_BLOCKS,
  VDI_MAX_BLOCK_SIZE,
  VDI_MIN_BLOCK_SIZE,
  VDI_PRE_HEADER_SIZE,
  VDI_SECTOR_SIZE,
} from './constants.js';
import { VDI_HEADERS_SIZE, VDI_HEADER_V1, VDI_PRE_HEADER } from './layouts.js';
import type { VdiFile } from './vdi-file.js';

export type VdiHeaderValues = ReturnType<typeof VDI_HEADER_V1.decode>;

export interface VdiHeader {
  readonly values: VdiHeaderValues;
  readonly subformat: 'dynamic' | 'fixed' | 'differencing';
  /** cbDisk, rounded down to whole sectors as VirtualBox does. */
  readonly sizeBytes: number;
}

const isPowerOfTwo = (value: number): boolean => value > 0 && (value & (value - 1)) === 0;

/** Decodes and checks the headers held in `head` (the file's first VDI_HEADERS_SIZE bytes). */
export function parseVdiHeader(file: VdiFile, head: Buffer, warn: (warning: SbmWarning) => void): VdiHeader {
  const pre = VDI_PRE_HEADER.decode(head, 0, file.path);
  if (pre.version !== VDI_IMAGE_VERSION_1_1) {
    throw file.unsupported(`VDI header version ${pre.version >>> 16}.${pre.version & 0xffff} is not supported (only 1.1)`, {
      version: pre.version,
    });
  }
  const values = VDI_HEADER_V1.decode(head, VDI_PRE_HEADER_SIZE, file.path);
  if (values.cbHeader < VDI_HEADER_V1_SIZE)
    throw file.corrupt(`VDI header size ${values.cbHeader} is smaller than the 384 bytes of a v1.1 header`);
  const type = values.imageType;
  if (type === VDI_IMAGE_TYPE_UNDO) throw file.unsupported('VDI undo images (type 3) are not supported');
  if (type !== VDI_IMAGE_TYPE_NORMAL && type !== VDI_IMAGE_TYPE_FIXED && type !== VDI_IMAGE_TYPE_DIFF)
    throw file.corrupt(`VDI image type ${type} is not one of 1 (normal), 2 (fixed), 4 (diff)`);
  const { cbBlock, cbBlockExtra, cBlocks } = values;
  if (!isPowerOfTwo(cbBlock) || cbBlock < VDI_MIN_BLOCK_SIZE || cbBlock > VDI_MAX_BLOCK_SIZE)
    throw file.corrupt(`VDI block size ${cbBlock} is not a power of two from 512 bytes to 128 MiB`);
  if (cbBlockExtra !== 0 && (!isPowerOfTwo(cbBlockExtra) || cbBlockExtra > VDI_MAX_BLOCK_SIZE))
    throw file.corrupt(`VDI block extra size ${cbBlockExtra} is not 0 or a power of two`);
  const cbDisk = toSafeInteger(values.cbDisk, 'VDI disk size', file.path);
  // qemu-img writes an empty disk (size 0, no blocks); VirtualBox refuses one, sbm reads it as empty.
  if (cbDisk !== 0 && cBlocks === 0) throw file.corrupt(`VDI has no blocks for a ${cbDisk}-byte disk`);
  if (cBlocks * cbBlock < cbDisk) throw file.corrupt(`VDI has ${cBlocks} blocks of ${cbBlock} bytes, too few for a ${cbDisk}-byte disk`);
  if (cBlocks > VDI_MAX_BLOCKS) throw file.unsupported(`VDI block map of ${cBlocks} entries is larger than sbm reads (${VDI_MAX_BLOCKS})`);
  if (values.cBlocksAllocated > cBlocks) throw file.corrupt(`VDI claims ${values.cBlocksAllocated} allocated blocks of ${cBlocks}`);
  if (values.offBlocks < VDI_PRE_HEADER_SIZE + VDI_HEADER_V1_SIZE)
    throw file.corrupt(`VDI block map offset ${values.offBlocks} lies inside the header`);
  if (values.offBlocks + cBlocks * 4 > file.sizeBytes)
    throw file.corrupt(`VDI block map at ${values.offBlocks} (${cBlocks} entries) lies past the end of the file`);
  if (values.offData < values.offBlocks + cBlocks * 4) throw file.corrupt(`VDI data offset ${values.offData} lies inside the block map`);
  const sizeBytes = Math.floor(cbDisk / VDI_SECTOR_SIZE) * VDI_SECTOR_SIZE;
  if (sizeBytes !== cbDisk) {
    warn({
      code: 'SBM_VDI_SIZE_ROUNDED',
      message: `${file.path}: disk size ${cbDisk} is not a multiple of 512; read as ${sizeBytes} bytes, as VirtualBox does`,
      data: { path: file.path },
    });
  }
  if (sizeBytes === 0 && cbDisk !== 0) throw file.corrupt(`VDI disk size ${cbDisk} is less than one sector`);
  return {
    values,
    subformat: type === VDI_IMAGE_TYPE_DIFF ? 'differencing' : type === VDI_IMAGE_TYPE_FIXED ? 'fixed' : 'dynamic',
    sizeBytes,
  };
}

export { VDI_HEADERS_SIZE };

/** Reads the block map; every allocated entry below cBlocks, used once, its block inside the file. */
export async function readBlockMap(file: VdiFile, header: VdiHeader): Promise<{ map: Uint32Array; allocated: number }> {
  const { offBlocks, offData, cBlocks, cbBlock, cbBlockExtra } = header.values;
  const raw = await file.read(cBlocks * 4, offBlocks, 'VDI block map');
  const map = new Uint32Array(cBlocks);
  const used = new Uint8Array(cBlocks);
  const stride = cbBlock + cbBlockExtra;
  let allocated = 0;
  for (let index = 0; index < cBlocks; index++) {
    const entry = raw.readUInt32LE(index * 4);
    map[index] = entry;
    if (entry === VDI_IMAGE_BLOCK_FREE || entry === VDI_IMAGE_BLOCK_ZERO) continue;
    if (entry >= cBlocks)
      throw file.corrupt(`VDI block ${index} points at data block ${entry}, past the ${cBlocks} blocks of the image`, { block: index });
    if (used[entry] === 1)
      throw file.corrupt(`VDI data block ${entry} is used by two blocks (the second is block ${index})`, { block: index });
    used[entry] = 1;
    const end = offData + (entry + 1) * stride;
    if (end > file.sizeBytes)
      throw file.corrupt(
        `VDI block ${index} (data block ${entry}) ends at ${end}, past the end of the file (${file.sizeBytes} bytes): truncated`,
        { block: index },
      );
    allocated++;
  }
  return { map, allocated };
}
