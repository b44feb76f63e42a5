// Test kit for VHDX: qemu-img/qemu-io wrappers, header patching (the CRC-32C fixed after a
// change), and a hand builder of whole VHDX files from the reader's own layout declarations.
// qemu cannot create a differencing VHDX (nor a 4 KiB logical sector one), so those are built
// here, following [MS-VHDX]: header section, a 1 MiB log, BAT at 2 MiB, metadata at 3 MiB,
// sector bitmap and payload blocks from 4 MiB.

import { execa } from 'execa';
import {
  BAT_GUID,
  FILE_PARAMETERS_GUID,
  FILE_PARAMETERS_HAS_PARENT,
  FILE_PARAMETERS_LEAVE_BLOCKS_ALLOCATED,
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  HEADER_SIZE,
  LOGICAL_SECTOR_SIZE_GUID,
  METADATA_GUID,
  METADATA_IS_REQUIRED,
  METADATA_IS_VIRTUAL_DISK,
  METADATA_TABLE_SIZE,
  MiB,
  PAGE83_DATA_GUID,
  PARENT_LOCATOR_GUID,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PHYSICAL_SECTOR_SIZE_GUID,
  REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET,
  REGION_TABLE_SIZE,
  SB_BLOCK_PRESENT,
  SECTORS_PER_BITMAP_BLOCK,
  VHDX_PARENT_LOCATOR_TYPE_GUID,
  VIRTUAL_DISK_SIZE_GUID,
} from '../../../formats/vhdx/constants.js';
import { guidToBytes } from '../../../formats/vhdx/guid.js';
import { structureCrc } from '../../../formats/vhdx/header-section.js';
import {
  BAT_ENTRY,
  FILE_IDENTIFIER,
  FILE_PARAMETERS,
  METADATA_TABLE_ENTRY,
  METADATA_TABLE_HEADER,
  PAGE83_DATA,
  PARENT_LOCATOR_ENTRY,
  PARENT_LOCATOR_HEADER,
  REGION_TABLE_ENTRY,
  REGION_TABLE_HEADER,
  SECTOR_SIZE_ITEM,
  VHDX_HEADER,
  VIRTUAL_DISK_SIZE,
} from '../../../formats/vhdx/layouts.js';

export { MiB };

export async function qemuImg(args: string[]): Promise<void> {
  await execa('qemu-img', args);
}

/** Makes a VHDX with qemu-img and writes into it with qemu-io (`-c` commands). */
export async function qemuVhdx(path: string, size: string, options: string[], commands: string[]): Promise<void> {
  await qemuImg(['create', '-q', '-f', 'vhdx', ...(options.length > 0 ? ['-o', options.join(',')] : []), path, size]);
  if (commands.length > 0) await execa('qemu-io', ['-f', 'vhdx', ...commands.flatMap((command) => ['-c', command]), path]);
}

/** Offset of the current header (valid, larger sequence number) of a VHDX held in memory. */
export function currentHeaderOffset(file: Buffer): number {
  const first = VHDX_HEADER.decode(file, HEADER1_OFFSET);
  const second = VHDX_HEADER.decode(file, HEADER2_OFFSET);
  return first.sequenceNumber >= second.sequenceNumber ? HEADER1_OFFSET : HEADER2_OFFSET;
}

/** Recomputes the CRC-32C of the header or region table at `at`. */
export function fixCrc(file: Buffer, at: number, size: number): void {
  file.writeUInt32LE(structureCrc(file, at, size), at + 4);
}

export function fixHeaderCrc(file: Buffer, at: number): void {
  fixCrc(file, at, HEADER_SIZE);
}

export function fixRegionTableCrcs(file: Buffer): void {
  fixCrc(file, REGION_TABLE1_OFFSET, REGION_TABLE_SIZE);
  fixCrc(file, REGION_TABLE2_OFFSET, REGION_TABLE_SIZE);
}

export interface BlockSpec {
  readonly state: number;
  /** blockSize bytes for FULLY_PRESENT / PARTIALLY_PRESENT blocks (zeros when left out). */
  readonly data?: Buffer;
  /** PARTIALLY_PRESENT: indexes of the block's logical sectors that are present here. */
  readonly presentSectors?: readonly number[];
}

export interface VhdxSpec {
  readonly virtualSize: number;
  readonly blockSize: number;
  readonly logicalSectorSize?: number;
  readonly leaveBlocksAllocated?: boolean;
  readonly blocks?: ReadonlyMap<number, BlockSpec>;
  readonly dataWriteGuid?: string;
  /** Differencing: the locator's key/value pairs (parent_linkage and paths). */
  readonly parentLocator?: Readonly<Record<string, string>>;
  readonly extraRegion?: { readonly guid: string; readonly required: number };
  readonly extraItem?: { readonly guid: string; readonly flags: number };
}

export const BUILT_LAYOUT = { logOffset: MiB, batOffset: 2 * MiB, metadataOffset: 3 * MiB, firstBlock: 4 * MiB } as const;

function encodeLocator(pairs: Readonly<Record<string, string>>): Buffer {
  const entries = Object.entries(pairs);
  const head = PARENT_LOCATOR_HEADER.encode({
    reserved: 0,
    keyValueCount: entries.length,
    locatorType: guidToBytes(VHDX_PARENT_LOCATOR_TYPE_GUID),
  });
  const table = Buffer.alloc(entries.length * PARENT_LOCATOR_ENTRY.sizeBytes);
  const strings: Buffer[] = [];
  let at = head.length + table.length;
  entries.forEach(([key, value], index) => {
    const keyBytes = Buffer.from(key, 'utf16le');
    const valueBytes = Buffer.from(value, 'utf16le');
    PARENT_LOCATOR_ENTRY.encode(
      { keyOffset: at, valueOffset: at + keyBytes.length, keyLength: keyBytes.length, valueLength: valueBytes.length },
      table,
      index * PARENT_LOCATOR_ENTRY.sizeBytes,
    );
    strings.push(keyBytes, valueBytes);
    at += keyBytes.length + valueBytes.length;
  });
  return Buffer.concat([head, table, ...strings]);
}

function metadataRegion(spec: VhdxSpec): Buffer {
  const logical = spec.logicalSectorSize ?? 512;
  const flags =
    (spec.leaveBlocksAllocated === true ? FILE_PARAMETERS_LEAVE_BLOCKS_ALLOCATED : 0) |
    (spec.parentLocator !== undefined ? FILE_PARAMETERS_HAS_PARENT : 0);
  const items: Array<[string, Buffer, number]> = [
    [FILE_PARAMETERS_GUID, FILE_PARAMETERS.encode({ blockSize: spec.blockSize, flags }), METADATA_IS_REQUIRED],
    [
      VIRTUAL_DISK_SIZE_GUID,
      VIRTUAL_DISK_SIZE.encode({ virtualDiskSize: BigInt(spec.virtualSize) }),
      METADATA_IS_REQUIRED | METADATA_IS_VIRTUAL_DISK,
    ],
    [
      PAGE83_DATA_GUID,
      PAGE83_DATA.encode({ page83Data: guidToBytes('11111111-2222-3333-4444-555555555555') }),
      METADATA_IS_REQUIRED | METADATA_IS_VIRTUAL_DISK,
    ],
    [LOGICAL_SECTOR_SIZE_GUID, SECTOR_SIZE_ITEM.encode({ sectorSize: logical }), METADATA_IS_REQUIRED | METADATA_IS_VIRTUAL_DISK],
    [PHYSICAL_SECTOR_SIZE_GUID, SECTOR_SIZE_ITEM.encode({ sectorSize: 4096 }), METADATA_IS_REQUIRED | METADATA_IS_VIRTUAL_DISK],
  ];
  if (spec.parentLocator !== undefined) items.push([PARENT_LOCATOR_GUID, encodeLocator(spec.parentLocator), METADATA_IS_REQUIRED]);
  if (spec.extraItem !== undefined) items.push([spec.extraItem.guid, Buffer.alloc(8), spec.extraItem.flags]);
  const region = Buffer.alloc(MiB);
  METADATA_TABLE_HEADER.encode({ signature: Buffer.from('metadata'), reserved: 0, entryCount: items.length }, region, 0);
  items.forEach(([guid, data, itemFlags], index) => {
    const offset = METADATA_TABLE_SIZE + index * 4096;
    data.copy(region, offset);
    METADATA_TABLE_ENTRY.encode(
      { itemId: guidToBytes(guid), offset, length: data.length, flags: itemFlags, reserved: 0 },
      region,
      METADATA_TABLE_HEADER.sizeBytes + index * METADATA_TABLE_ENTRY.sizeBytes,
    );
  });
  return region;
}

function batEntry(state: number, fileOffset: number, target: Buffer, index: number): void {
  const offsetMb = fileOffset / MiB;
  BAT_ENTRY.encode(
    { low: (state | ((offsetMb % 4096) << 20)) >>> 0, high: Math.floor(offsetMb / 4096) },
    target,
    index * BAT_ENTRY.sizeBytes,
  );
}

/** A whole VHDX file per `spec`. */
export function buildVhdx(spec: VhdxSpec): Buffer {
  const logical = spec.logicalSectorSize ?? 512;
  const chunkRatio = (SECTORS_PER_BITMAP_BLOCK * logical) / spec.blockSize;
  const sectorsPerBlock = spec.blockSize / logical;
  const section = Buffer.alloc(MiB);
  FILE_IDENTIFIER.encode({ signature: Buffer.from('vhdxfile'), creator: Buffer.from('sbm test kit', 'utf16le') }, section, 0);
  const dataWriteGuid = guidToBytes(spec.dataWriteGuid ?? 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE');
  for (const [at, sequenceNumber] of [
    [HEADER1_OFFSET, 7n],
    [HEADER2_OFFSET, 6n],
  ] as const) {
    VHDX_HEADER.encode(
      {
        signature: Buffer.from('head'),
        checksum: 0,
        sequenceNumber,
        fileWriteGuid: guidToBytes('01010101-0202-0303-0404-050505050505'),
        dataWriteGuid,
        logVersion: 0,
        version: 1,
        logLength: MiB,
        logOffset: BigInt(BUILT_LAYOUT.logOffset),
      },
      section,
      at,
    );
    fixHeaderCrc(section, at);
  }
  const regions: Array<[string, number, number]> = [
    [BAT_GUID, BUILT_LAYOUT.batOffset, 1],
    [METADATA_GUID, BUILT_LAYOUT.metadataOffset, 1],
  ];
  if (spec.extraRegion !== undefined) regions.push([spec.extraRegion.guid, 8 * 1024 * MiB, spec.extraRegion.required]);
  for (const tableAt of [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET]) {
    REGION_TABLE_HEADER.encode({ signature: Buffer.from('regi'), checksum: 0, entryCount: regions.length, reserved: 0 }, section, tableAt);
    regions.forEach(([guid, fileOffset, required], index) => {
      REGION_TABLE_ENTRY.encode(
        { guid: guidToBytes(guid), fileOffset: BigInt(fileOffset), length: MiB, required },
        section,
        tableAt + REGION_TABLE_HEADER.sizeBytes + index * REGION_TABLE_ENTRY.sizeBytes,
      );
    });
  }
  fixRegionTableCrcs(section);

  const bat = Buffer.alloc(MiB);
  const chunks: Buffer[] = [section, Buffer.alloc(MiB), bat, metadataRegion(spec)];
  let next = BUILT_LAYOUT.firstBlock;
  const bitmaps = new Map<number, Buffer>();
  for (const [block, blockSpec] of [...(spec.blocks ?? new Map<number, BlockSpec>())].sort((a, b) => a[0] - b[0])) {
    let fileOffset = 0;
    if (blockSpec.state === PAYLOAD_BLOCK_FULLY_PRESENT || blockSpec.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      fileOffset = next;
      const data = Buffer.alloc(spec.blockSize);
      blockSpec.data?.copy(data);
      chunks.push(data);
      next += spec.blockSize;
    }
    batEntry(blockSpec.state, fileOffset, bat, block + Math.floor(block / chunkRatio));
    if (blockSpec.state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      const chunk = Math.floor(block / chunkRatio);
      let bitmap = bitmaps.get(chunk);
      if (bitmap === undefined) {
        bitmap = Buffer.alloc(MiB);
        bitmaps.set(chunk, bitmap);
        chunks.push(bitmap);
        batEntry(SB_BLOCK_PRESENT, next, bat, chunk * (chunkRatio + 1) + chunkRatio);
        next += MiB;
      }
      for (const sector of blockSpec.presentSectors ?? []) {
        const bit = (block % chunkRatio) * sectorsPerBlock + sector;
        bitmap[bit >>> 3] = (bitmap[bit >>> 3] ?? 0) | (1 << (bit & 7));
      }
    }
  }
  return Buffer.concat(chunks);
}
