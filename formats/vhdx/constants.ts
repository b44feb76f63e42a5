// VHDX constants with the names of Microsoft's [MS-VHDX] specification. GUIDs are written in
// their registry text form; guid.ts turns them into the mixed-endian 16 bytes the file holds.

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** File type identifier at offset 0. */
export const VHDX_FILE_SIGNATURE = 'vhdxfile';
export const VHDX_HEADER_SIGNATURE = 'head';
export const VHDX_REGION_TABLE_SIGNATURE = 'regi';
export const VHDX_METADATA_SIGNATURE = 'metadata';

export const FILE_IDENTIFIER_OFFSET = 0;
export const HEADER1_OFFSET = 64 * KiB;
export const HEADER2_OFFSET = 128 * KiB;
export const REGION_TABLE1_OFFSET = 192 * KiB;
export const REGION_TABLE2_OFFSET = 256 * KiB;
/** The header section: file identifier, two headers, two region tables, reserved space. */
export const HEADER_SECTION_SIZE = MiB;

export const HEADER_SIZE = 4 * KiB;
export const REGION_TABLE_SIZE = 64 * KiB;
export const REGION_TABLE_MAX_ENTRIES = 2047;
export const METADATA_TABLE_SIZE = 64 * KiB;
export const METADATA_TABLE_MAX_ENTRIES = 2047;
export const METADATA_ITEM_MAX_LENGTH = MiB;

export const VHDX_HEADER_VERSION = 1;
export const VHDX_LOG_VERSION = 0;

/** Region table entry `Required` bit. */
export const REGION_REQUIRED = 0x1;
/** Metadata table entry flags. */
export const METADATA_IS_USER = 0x1;
export const METADATA_IS_VIRTUAL_DISK = 0x2;
export const METADATA_IS_REQUIRED = 0x4;

/** File Parameters flags. */
export const FILE_PARAMETERS_LEAVE_BLOCKS_ALLOCATED = 0x1;
export const FILE_PARAMETERS_HAS_PARENT = 0x2;

export const BAT_GUID = '2DC27766-F623-4200-9D64-115E9BFD4A08';
export const METADATA_GUID = '8B7CA206-4790-4B9A-B8FE-575F050F886E';

export const FILE_PARAMETERS_GUID = 'CAA16737-FA36-4D43-B3B6-33F0AA44E76B';
export const VIRTUAL_DISK_SIZE_GUID = '2FA54224-CD1B-4876-B211-5DBED83BF4B8';
export const PAGE83_DATA_GUID = 'BECA12AB-B2E6-4523-93EF-C309E000C746';
export const LOGICAL_SECTOR_SIZE_GUID = '8141BF1D-A96F-4709-BA47-F233A8FAAB5F';
export const PHYSICAL_SECTOR_SIZE_GUID = 'CDA348C7-445D-4471-9CC9-E9885251C556';
export const PARENT_LOCATOR_GUID = 'A8D35F2D-B30B-454D-ABF7-D3D84834AB0C';
/** LocatorType of a VHDX parent locator (the only type the spec defines). */
export const VHDX_PARENT_LOCATOR_TYPE_GUID = 'B04AEFB7-D19E-4A81-B789-25B8E9445913';

export const MIN_BLOCK_SIZE = MiB;
export const MAX_BLOCK_SIZE = 256 * MiB;
/** 64 TiB: the largest virtual disk the spec allows. */
export const MAX_VIRTUAL_DISK_SIZE = 64 * 1024 * 1024 * MiB;
/** The sector bitmap block covers 2^23 logical sectors in 1 MiB. */
export const SECTORS_PER_BITMAP_BLOCK = 2 ** 23;
export const SECTOR_BITMAP_BLOCK_SIZE = MiB;

/** BAT entry: bits 0-2 state, 3-19 reserved, 20-63 FileOffsetMB. */
export const BAT_STATE_MASK = 0x7;
export const BAT_RESERVED_MASK = 0xffff8;
export const BAT_FILE_OFFSET_SHIFT = 20;

export const PAYLOAD_BLOCK_NOT_PRESENT = 0;
export const PAYLOAD_BLOCK_UNDEFINED = 1;
export const PAYLOAD_BLOCK_ZERO = 2;
export const PAYLOAD_BLOCK_UNMAPPED = 3;
/** Spec v0.95 called state 5 UNMAPPED; qemu still reads it so. */
export const PAYLOAD_BLOCK_UNMAPPED_V095 = 5;
export const PAYLOAD_BLOCK_FULLY_PRESENT = 6;
export const PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7;

export const SB_BLOCK_NOT_PRESENT = 0;
export const SB_BLOCK_PRESENT = 6;

/** Parent locator keys, in the order a reader tries the paths. */
export const PARENT_LINKAGE_KEY = 'parent_linkage';
export const PARENT_LINKAGE2_KEY = 'parent_linkage2';
export const PARENT_PATH_KEYS = ['relative_path', 'volume_path', 'absolute_win32_path'] as const;

/** What sbm writes: Hyper-V's default block size, and the 1 MiB log qemu-img creates. */
export const VHDX_WRITE_BLOCK_SIZE = 32 * MiB;
export const VHDX_WRITE_LOG_SIZE = MiB;
export const VHDX_WRITE_SECTOR_SIZE = 512;
