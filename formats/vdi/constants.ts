// VDI constants, with VirtualBox's names (VDICore.h) and qemu's (block/vdi.c) where they differ.
// All fields are little-endian.

export const VDI_IMAGE_SIGNATURE = 0xbeda107f;
/** The only header version read: 1.1 (major << 16 | minor). */
export const VDI_IMAGE_VERSION_1_1 = 0x00010001;
export const VDI_PRE_HEADER_SIZE = 0x48;
/** Smallest cbHeader of a v1.1 header (qemu writes exactly this; VirtualBox 400 with LCHS). */
export const VDI_HEADER_V1_SIZE = 384;

export const VDI_IMAGE_TYPE_NORMAL = 1;
export const VDI_IMAGE_TYPE_FIXED = 2;
export const VDI_IMAGE_TYPE_UNDO = 3;
export const VDI_IMAGE_TYPE_DIFF = 4;

/** Block map entry of a block not in this image (zeros in a base, the parent's in a diff). */
export const VDI_IMAGE_BLOCK_FREE = 0xffffffff;
/** Block map entry of a block known to read as zeros (qemu: VDI_DISCARDED). */
export const VDI_IMAGE_BLOCK_ZERO = 0xfffffffe;

export const VDI_MIN_BLOCK_SIZE = 512;
export const VDI_MAX_BLOCK_SIZE = 128 * 1024 * 1024;
/** Block map entries read at open, at most: 64 MiB of map, 16 TiB with 1 MiB blocks. */
export const VDI_MAX_BLOCKS = 16 * 1024 * 1024;
export const VDI_SECTOR_SIZE = 512;

/** cbHeader of the "1.1+" header VirtualBox writes (v1.1 plus LCHS geometry); sbm writes it too. */
export const VDI_HEADER_V1_PLUS_SIZE = 400;
/** VirtualBox aligns the block map and the data area to this (VDI_DATA_ALIGN). */
export const VDI_DATA_ALIGN = 1024 * 1024;
/** The block size sbm writes: VirtualBox's default and the only one qemu reads. */
export const VDI_WRITE_BLOCK_SIZE = 1024 * 1024;
