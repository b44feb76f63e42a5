// Parallels Desktop / Virtuozzo disk constants, with the names and radix of qemu's
// docs/interop/parallels.rst and prl-xml.rst (see ../shared/reference/parallels-format.md).

export const SECTOR_SIZE = 512;

/** Old magic: BAT entries are sector offsets; only the low 32 bits of nb_sectors count. */
export const HEADER_MAGIC = 'WithoutFreeSpace';
/** Extended magic: BAT entries are cluster offsets. */
export const HEADER_MAGIC2 = 'WithouFreSpacExt';
export const HEADER_VERSION = 2;
export const HEADER_SIZE = 64;

/** `inuse`: "Ynot" = opened read-write and not closed cleanly (a running VM's disk). */
export const HEADER_INUSE_MAGIC = 0x746f6e59;
/** `inuse`: "v2.1" = closed cleanly by Parallels. */
export const HEADER_CLOSED_MAGIC = 0x312e3276;

/** The active layer's GUID when Snapshots has no TopGUID. */
export const TOP_GUID = '5fbaabe3-6958-40ff-92a7-860e329aab41';
export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

export const DESCRIPTOR_NAME = 'DiskDescriptor.xml';
export const VM_CONFIG_NAME = 'config.pvs';
/** Descriptors are a few KB; config.pvs files tens of KB. */
export const MAX_DESCRIPTOR_BYTES = 1024 * 1024;
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
/** More layers than this in one chain is refused (Parallels keeps a few dozen at most). */
export const MAX_CHAIN_DEPTH = 256;
/** BATs of more entries than this are refused before allocating (2^28 x 1 MiB clusters = 256 TiB). */
export const MAX_BAT_ENTRIES = 1 << 28;
