// VMDK constants with the names and radix of VMware's "Virtual Disk Format 5.0" technote (VDF5)
// and open-vmdk's vmware_vmdk.h. All on-disk integers are little-endian; a sector is 512 bytes.

export const SECTOR_SIZE = 512;

/** SparseExtentHeader.magicNumber: bytes "KDMV" on disk. */
export const SPARSE_MAGICNUMBER = 0x564d444b;
/** open-vmdk's placeholder magic (bytes "kdmv") while a file is still being written. */
export const SPARSE_MAGICNUMBER_INCOMPLETE = 0x766d646b;
/** ESXi vmfsSparse (COWD) redo-log extent magic: bytes "COWD". */
export const COWD_MAGICNUMBER = 0x44574f43;
/** ESXi seSparse constant-header magic (u64 0x00000000cafebabe). */
export const SESPARSE_CONST_HEADER_MAGIC = 0xcafebabe;

export const SPARSE_VERSION_MIN = 1;
/** Version 2 allows zeroed-grain GTEs; version 3 is used by streamOptimized. */
export const SPARSE_VERSION_MAX = 3;

export const SPARSEFLAG_VALID_NEWLINE_DETECTOR = 0x1;
export const SPARSEFLAG_USE_REDUNDANT = 0x2;
export const SPARSEFLAG_ZEROED_GTE = 0x4;
export const SPARSEFLAG_COMPRESSED = 0x10000;
export const SPARSEFLAG_EMBEDDED_LBA = 0x20000;
/** The high 16 bits are incompatible features: refuse any we do not know. */
export const SPARSEFLAG_INCOMPAT_FLAGS = 0xffff0000;
export const SPARSEFLAG_KNOWN_INCOMPAT = SPARSEFLAG_COMPRESSED | SPARSEFLAG_EMBEDDED_LBA;

export const SPARSE_SINGLE_END_LINE_CHAR = 0x0a;
export const SPARSE_NON_END_LINE_CHAR = 0x20;
export const SPARSE_DOUBLE_END_LINE_CHAR1 = 0x0d;
export const SPARSE_DOUBLE_END_LINE_CHAR2 = 0x0a;

export const VMDK_COMPRESSION_NONE = 0;
export const VMDK_COMPRESSION_DEFLATE = 1;

/** gdOffset value meaning "the grain directory is found through the footer". */
export const SPARSE_GD_AT_END = 0xffffffffffffffffn;

/** Grain table entries with a meaning other than a sector number. */
export const GTE_UNALLOCATED = 0;
export const GTE_ZEROED = 1;

export const GRAIN_MARKER_EOS = 0;
export const GRAIN_MARKER_GRAIN_TABLE = 1;
export const GRAIN_MARKER_GRAIN_DIRECTORY = 2;
export const GRAIN_MARKER_FOOTER = 3;
export const GRAIN_MARKER_PROGRESS = 4;

/** Defaults VMware and qemu write. */
export const DEFAULT_GRAIN_SIZE_SECTORS = 128;
export const DEFAULT_NUM_GTES_PER_GT = 512;
export const DEFAULT_DESCRIPTOR_SIZE_SECTORS = 20;

/** Bounds sbm accepts (qemu's limits, tightened where memory is at stake). */
export const MAX_GRAIN_SIZE_SECTORS = 0x200000;
/** Compressed grains are inflated in memory: keep each under 1 MiB. */
export const MAX_COMPRESSED_GRAIN_SIZE_SECTORS = 2048;
export const MAX_NUM_GTES_PER_GT = 16384;
/** Largest grain directory sbm loads (entries): 16 MiB of u32. */
export const MAX_GD_ENTRIES = 1 << 22;

/** COWD (vmfsSparse) fixed values (VDF5). */
export const COWD_HEADER_SIZE = 2048;
export const COWD_GTES_PER_GT = 4096;

/** Descriptor files are small text; anything bigger is not a descriptor. */
export const MAX_DESCRIPTOR_FILE_BYTES = 1024 * 1024;
export const NO_PARENT_CID = 0xffffffff;

/** createType values whose data lives on devices, not in files: refused. */
export const DEVICE_CREATE_TYPES = [
  'fulldevice',
  'partitioneddevice',
  'vmfsrdm',
  'vmfsrdmp',
  'vmfsrawdevicemap',
  'vmfspassthroughrawdevicemap',
  'vmfsraw',
] as const;

/** Extent types backed by devices: refused. */
export const DEVICE_EXTENT_TYPES = ['VMFSRDM', 'VMFSRAW'] as const;
