// The metadata region: a 64 KiB table of items, then the items ([MS-VHDX] 2.6).
//
//   File Parameters     BlockSize (power of two, 1..256 MiB), LeaveBlockAllocated, HasParent
//   Virtual Disk Size   bytes, a multiple of the logical sector size, at most 64 TiB
//   Page 83 Data        the disk's GUID (SCSI page 83)
//   Logical / Physical Sector Size   512 or 4096
//   Parent Locator      differencing disks only (parent-locator.ts)
//
// Unknown items marked IsRequired are refused; known items appear once and fit the region.

import type { Region } from './header-section.js';
import {
  FILE_PARAMETERS_GUID,
  FILE_PARAMETERS_HAS_PARENT,
  FILE_PARAMETERS_LEAVE_BLOCKS_ALLOCATED,
  LOGICAL_SECTOR_SIZE_GUID,
  MAX_BLOCK_SIZE,
  MAX_VIRTUAL_DISK_SIZE,
  METADATA_IS_REQUIRED,
  METADATA_ITEM_MAX_LENGTH,
  METADATA_TABLE_MAX_ENTRIES,
  METADATA_TABLE_SIZE,
  MIN_BLOCK_SIZE,
  PAGE83_DATA_GUID,
  PARENT_LOCATOR_GUID,
  PHYSICAL_SECTOR_SIZE_GUID,
  VHDX_METADATA_SIGNATURE,
  VIRTUAL_DISK_SIZE_GUID,
} from './constants.js';
import { guidToBytes, guidToText } from './guid.js';
import {
  FILE_PARAMETERS,
  METADATA_TABLE_ENTRY,
  METADATA_TABLE_HEADER,
  PAGE83_DATA,
  SECTOR_SIZE_ITEM,
  VIRTUAL_DISK_SIZE,
} from './layouts.js';
import { type ParentLocator, parseParentLocator } from './parent-locator.js';
import type { VhdxFile } from './vhdx-file.js';

export interface VhdxMetadata {
  readonly blockSize: number;
  readonly leaveBlocksAllocated: boolean;
  readonly hasParent: boolean;
  readonly virtualDiskSize: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly page83Data: string;
  readonly parentLocator: ParentLocator | undefined;
}

interface ItemPlace {
  readonly offset: number;
  readonly length: number;
}

const KNOWN: ReadonlyArray<readonly [string, Buffer]> = [
  ['file parameters', guidToBytes(FILE_PARAMETERS_GUID)],
  ['virtual disk size', guidToBytes(VIRTUAL_DISK_SIZE_GUID)],
  ['page 83 data', guidToBytes(PAGE83_DATA_GUID)],
  ['logical sector size', guidToBytes(LOGICAL_SECTOR_SIZE_GUID)],
  ['physical sector size', guidToBytes(PHYSICAL_SECTOR_SIZE_GUID)],
  ['parent locator', guidToBytes(PARENT_LOCATOR_GUID)],
];

async function readTable(file: VhdxFile, region: Region): Promise<Map<string, ItemPlace>> {
  if (region.length < METADATA_TABLE_SIZE)
    throw file.corrupt(`VHDX metadata region of ${region.length} bytes cannot hold its 64 KiB table`);
  const table = await file.read(METADATA_TABLE_SIZE, region.fileOffset, 'VHDX metadata table');
  const head = METADATA_TABLE_HEADER.decode(table, 0);
  if (head.signature.toString('latin1') !== VHDX_METADATA_SIGNATURE) throw file.corrupt('VHDX metadata table signature is not "metadata"');
  if (head.entryCount > METADATA_TABLE_MAX_ENTRIES)
    throw file.corrupt(`VHDX metadata table has ${head.entryCount} entries (at most ${METADATA_TABLE_MAX_ENTRIES})`);
  const items = new Map<string, ItemPlace>();
  for (let index = 0; index < head.entryCount; index++) {
    const entry = METADATA_TABLE_ENTRY.decode(table, METADATA_TABLE_HEADER.sizeBytes + index * METADATA_TABLE_ENTRY.sizeBytes);
    const known = KNOWN.find(([, guid]) => guid.equals(entry.itemId));
    if (known === undefined) {
      if ((entry.flags & METADATA_IS_REQUIRED) !== 0) {
        throw file.unsupported(`VHDX metadata item ${guidToText(entry.itemId)} is marked required and sbm does not know it`, {
          item: guidToText(entry.itemId),
        });
      }
      continue;
    }
    const [name] = known;
    if (items.has(name)) throw file.corrupt(`VHDX metadata item "${name}" is listed twice`);
    const inside =
      entry.length === 0 ? entry.offset === 0 : entry.offset >= METADATA_TABLE_SIZE && entry.offset + entry.length <= region.length;
    if (!inside || entry.length > METADATA_ITEM_MAX_LENGTH) {
      throw file.corrupt(`VHDX metadata item "${name}" (offset ${entry.offset}, length ${entry.length}) lies outside the metadata region`);
    }
    items.set(name, { offset: entry.offset, length: entry.length });
  }
  return items;
}

async function readItem(
  file: VhdxFile,
  region: Region,
  items: Map<string, ItemPlace>,
  name: string,
  minimum: number,
): Promise<Buffer | undefined> {
  const place = items.get(name);
  if (place === undefined) return undefined;
  if (place.length < minimum) throw file.corrupt(`VHDX metadata item "${name}" is ${place.length} bytes, expected at least ${minimum}`);
  return file.read(place.length, region.fileOffset + place.offset, `VHDX metadata item "${name}"`);
}

async function requiredItem(file: VhdxFile, region: Region, items: Map<string, ItemPlace>, name: string, minimum: number): Promise<Buffer> {
  const item = await readItem(file, region, items, name, minimum);
  if (item === undefined) throw file.corrupt(`VHDX metadata has no "${name}" item`);
  return item;
}

function checkSectorSize(file: VhdxFile, what: string, value: number): number {
  if (value !== 512 && value !== 4096) throw file.corrupt(`VHDX ${what} is ${value} (512 or 4096 expected)`);
  return value;
}

export async function readMetadata(file: VhdxFile, region: Region): Promise<VhdxMetadata> {
  const items = await readTable(file, region);
  const parameters = FILE_PARAMETERS.decode(await requiredItem(file, region, items, 'file parameters', FILE_PARAMETERS.sizeBytes));
  const sizeItem = VIRTUAL_DISK_SIZE.decode(await requiredItem(file, region, items, 'virtual disk size', VIRTUAL_DISK_SIZE.sizeBytes));
  const page83 = PAGE83_DATA.decode(await requiredItem(file, region, items, 'page 83 data', PAGE83_DATA.sizeBytes));
  const logical = SECTOR_SIZE_ITEM.decode(await requiredItem(file, region, items, 'logical sector size', SECTOR_SIZE_ITEM.sizeBytes));
  const physical = SECTOR_SIZE_ITEM.decode(await requiredItem(file, region, items, 'physical sector size', SECTOR_SIZE_ITEM.sizeBytes));

  const { blockSize } = parameters;
  if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw file.corrupt(`VHDX block size ${blockSize} is not a power of two from 1 MiB to 256 MiB`);
  }
  const logicalSectorSize = checkSectorSize(file, 'logical sector size', logical.sectorSize);
  const physicalSectorSize = checkSectorSize(file, 'physical sector size', physical.sectorSize);
  if (sizeItem.virtualDiskSize > BigInt(MAX_VIRTUAL_DISK_SIZE))
    throw file.corrupt(`VHDX virtual disk size ${sizeItem.virtualDiskSize} is larger than 64 TiB`);
  const virtualDiskSize = Number(sizeItem.virtualDiskSize);
  if (virtualDiskSize % logicalSectorSize !== 0) {
    throw file.corrupt(`VHDX virtual disk size ${virtualDiskSize} is not a multiple of the logical sector size ${logicalSectorSize}`);
  }
  const hasParent = (parameters.flags & FILE_PARAMETERS_HAS_PARENT) !== 0;
  const locatorItem = hasParent ? await requiredItem(file, region, items, 'parent locator', 1) : undefined;
  return {
    blockSize,
    leaveBlocksAllocated: (parameters.flags & FILE_PARAMETERS_LEAVE_BLOCKS_ALLOCATED) !== 0,
    hasParent,
    virtualDiskSize,
    logicalSectorSize,
    physicalSectorSize,
    page83Data: guidToText(page83.page83Data),
    parentLocator: locatorItem === undefined ? undefined : parseParentLocator(file, locatorItem),
  };
}
