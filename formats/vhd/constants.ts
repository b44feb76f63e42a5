// VHD constants, with the names of Microsoft's "Virtual Hard Disk Image Format Specification"
// (and qemu's vpc.c where the spec is silent). All multi-byte fields are big-endian.

export const VHD_SECTOR_SIZE = 512;
export const VHD_FOOTER_SIZE = 512;
/** Virtual PC before 2004 wrote a 511-byte footer at the end of fixed disks. */
export const VHD_OLD_FOOTER_SIZE = 511;
export const VHD_DYNAMIC_HEADER_SIZE = 1024;

export const VHD_FOOTER_COOKIE = 'conectix';
export const VHD_DYNAMIC_COOKIE = 'cxsparse';

export const VHD_DISK_TYPE_FIXED = 2;
export const VHD_DISK_TYPE_DYNAMIC = 3;
export const VHD_DISK_TYPE_DIFFERENCING = 4;

/** A BAT entry for a block that is not in the file. */
export const VHD_BAT_UNUSED = 0xffffffff;

/** Parent locator platform codes. */
export const PLATFORM_CODE_NONE = 0;
export const PLATFORM_CODE_W2RU = 0x57327275; // 'W2ru' relative path, UTF-16LE
export const PLATFORM_CODE_W2KU = 0x57326b75; // 'W2ku' absolute path, UTF-16LE
export const PARENT_LOCATOR_COUNT = 8;
/** Locator data longer than this is damage: a Windows path is at most 32 767 UTF-16 units. */
export const PARENT_LOCATOR_MAX_BYTES = 65536;

/** The largest geometry: qemu (and Hyper-V) then take current_size as the disk size. */
export const VHD_MAX_CYLINDERS = 65535;
export const VHD_MAX_HEADS = 16;
export const VHD_MAX_SECTORS_PER_TRACK = 255;

/** qemu's VHD_MAX_SECTORS: 2040 GiB, the format's limit. */
export const VHD_MAX_SIZE_BYTES = 2040 * 1024 * 1024 * 1024;

/**
 * Creator applications whose footer current_size is the disk size (qemu 7.2 vpc.c: Hyper-V,
 * qemu with force_size, Disk2VHD, XenServer, blktap). Every other creator ('vpc ', 'qemu', ...)
 * is sized by its CHS geometry.
 */
export const CURRENT_SIZE_CREATORS: readonly string[] = ['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0'];

/**
 * BAT entries read at open, at most: 16 MiB of table (and 32 MiB to check block overlaps), enough
 * for 2040 GiB with 512 KiB blocks; every known writer uses 2 MiB blocks (1 M entries at most).
 */
export const VHD_MAX_BAT_ENTRIES = 4 * 1024 * 1024;
