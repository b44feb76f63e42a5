// The metadata sbm writes into a new dynamic VHDX: the header section (file identifier, two
// headers, two region tables) and the metadata region, all from the declarations in layouts.ts.
//
//   header section (first 1 MiB)          metadata region (1 MiB)
//   0       "vhdxfile" + creator          0       table: "metadata", 5 entries
//   64 KiB  header 1, sequence 1          64 KiB  file parameters (block size, flags 0)
//   128 KiB header 2, sequence 2 (current)        virtual disk size, page 83 data (disk GUID),
//   192 KiB region table 1 (BAT, metadata)        logical and physical sector size (512)
//   256 KiB region table 2 (same bytes)
//
// Both headers carry the same GUIDs and log fields and differ only in their sequence number, as
// after a first update: readers take the larger. LogGuid is zero: the log is empty, nothing to
// replay. Each header and region table carries its CRC-32C, computed with its checksum field zero.

import { randomUUID } from 'node:crypto';
import { crc32c } from '../../lib/checksums.js';
import {
  BAT_GUID,
  FILE_PARAMETERS_GUID,
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  HEADER_SIZE,
  LOGICAL_SECTOR_SIZE_GUID,
  METADATA_GUID,
  METADATA_IS_REQUIRED,
  METADATA_IS_VIRTUAL_DISK,
  METADATA_TABLE_SIZE,
  PAGE83_DATA_GUID,
  PHYSICAL_SECTOR_SIZE_GUID,
  REGION_REQUIRED,
  REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET,
  REGION_TABLE_SIZE,
  VHDX_FILE_SIGNATURE,
  VHDX_HEADER_SIGNATURE,
  VHDX_HEADER_VERSION,
  VHDX_LOG_VERSION,
  VHDX_METADATA_SIGNATURE,
  VHDX_REGION_TABLE_SIGNATURE,
  VIRTUAL_DISK_SIZE_GUID,
} from './constants.js';
import { guidToBytes } from './guid.js';
import type { Region } from './header-section.js';
import {
  FILE_IDENTIFIER,
  FILE_PARAMETERS,
  METADATA_TABLE_ENTRY,
  METADATA_TABLE_HEADER,
  PAGE83_DATA,
  REGION_TABLE_ENTRY,
  REGION_TABLE_HEADER,
  SECTOR_SIZE_ITEM,
  VHDX_HEADER,
  VIRTUAL_DISK_SIZE,
} from './layouts.js';

export interface VhdxPlan {
  readonly virtualDiskSize: number;
  readonly blockSize: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly log: Region;
  readonly bat: Region;
  readonly metadata: Region;
}

const CREATOR = 'sbm';
/** Bytes of the header section that hold anything: up to the end of region table 2. */
export const HEADER_SECTION_USED = REGION_TABLE2_OFFSET + REGION_TABLE_SIZE;

const randomGuid = (): Buffer => guidToBytes(randomUUID());

/** Stores the CRC-32C of `size` bytes at `at`, computed while the checksum field is still zero. */
function sealCrc(buffer: Buffer, at: number, size: number, checksumOffset: number): void {
  buffer.writeUInt32LE(crc32c(buffer, at, at + size), at + checksumOffset);
}

/** The first HEADER_SECTION_USED bytes of the file. */
export function encodeHeaderSection(plan: VhdxPlan): Buffer {
  const out = Buffer.alloc(HEADER_SECTION_USED);
  FILE_IDENTIFIER.encode({ signature: Buffer.from(VHDX_FILE_SIGNATURE, 'latin1'), creator: Buffer.from(CREATOR, 'utf16le') }, out, 0);
  const fileWriteGuid = randomGuid();
  const dataWriteGuid = randomGuid();
  for (const [at, sequenceNumber] of [
    [HEADER1_OFFSET, 1n],
    [HEADER2_OFFSET, 2n],
  ] as const) {
    VHDX_HEADER.encode(
      {
        signature: Buffer.from(VHDX_HEADER_SIGNATURE, 'latin1'),
        checksum: 0,
        sequenceNumber,
        fileWriteGuid,
        dataWriteGuid,
        logVersion: VHDX_LOG_VERSION,
        version: VHDX_HEADER_VERSION,
        logLength: plan.log.length,
        logOffset: BigInt(plan.log.fileOffset),
      },
      out,
      at,
    );
    sealCrc(out, at, HEADER_SIZE, VHDX_HEADER.offsetOf('checksum'));
  }
  for (const at of [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET]) {
    REGION_TABLE_HEADER.encode(
      { signature: Buffer.from(VHDX_REGION_TABLE_SIGNATURE, 'latin1'), checksum: 0, entryCount: 2, reserved: 0 },
      out,
      at,
    );
    const regions = [
      [BAT_GUID, plan.bat],
      [METADATA_GUID, plan.metadata],
    ] as const;
    regions.forEach(([guid, region], index) => {
      REGION_TABLE_ENTRY.encode(
        { guid: guidToBytes(guid), fileOffset: BigInt(region.fileOffset), length: region.length, required: REGION_REQUIRED },
        out,
        at + REGION_TABLE_HEADER.sizeBytes + index * REGION_TABLE_ENTRY.sizeBytes,
      );
    });
    sealCrc(out, at, REGION_TABLE_SIZE, REGION_TABLE_HEADER.offsetOf('checksum'));
  }
  return out;
}

/** The metadata region's table and items (the rest of the region stays zero). */
export function encodeMetadataRegion(plan: VhdxPlan): Buffer {
  const items: ReadonlyArray<readonly [string, number, Buffer]> = [
    [FILE_PARAMETERS_GUID, METADATA_IS_REQUIRED, FILE_PARAMETERS.encode({ blockSize: plan.blockSize, flags: 0 })],
    [
      VIRTUAL_DISK_SIZE_GUID,
      METADATA_IS_VIRTUAL_DISK | METADATA_IS_REQUIRED,
      VIRTUAL_DISK_SIZE.encode({ virtualDiskSize: BigInt(plan.virtualDiskSize) }),
    ],
    [PAGE83_DATA_GUID, METADATA_IS_VIRTUAL_DISK | METADATA_IS_REQUIRED, PAGE83_DATA.encode({ page83Data: randomGuid() })],
    [
      LOGICAL_SECTOR_SIZE_GUID,
      METADATA_IS_VIRTUAL_DISK | METADATA_IS_REQUIRED,
      SECTOR_SIZE_ITEM.encode({ sectorSize: plan.logicalSectorSize }),
    ],
    [
      PHYSICAL_SECTOR_SIZE_GUID,
      METADATA_IS_VIRTUAL_DISK | METADATA_IS_REQUIRED,
      SECTOR_SIZE_ITEM.encode({ sectorSize: plan.physicalSectorSize }),
    ],
  ];
  const itemBytes = items.reduce((sum, [, , bytes]) => sum + bytes.length, 0);
  const out = Buffer.alloc(METADATA_TABLE_SIZE + itemBytes);
  METADATA_TABLE_HEADER.encode(
    { signature: Buffer.from(VHDX_METADATA_SIGNATURE, 'latin1'), reserved: 0, entryCount: items.length },
    out,
    0,
  );
  let itemOffset = METADATA_TABLE_SIZE;
  items.forEach(([guid, flags, bytes], index) => {
    METADATA_TABLE_ENTRY.encode(
      { itemId: guidToBytes(guid), offset: itemOffset, length: bytes.length, flags, reserved: 0 },
      out,
      METADATA_TABLE_HEADER.sizeBytes + index * METADATA_TABLE_ENTRY.sizeBytes,
    );
    bytes.copy(out, itemOffset);
    itemOffset += bytes.length;
  });
  return out;
}
