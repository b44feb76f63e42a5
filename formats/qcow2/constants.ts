// qcow2 spec constants (qemu docs/interop/qcow2.rst, block/qcow2.h), with the spec's names and
// radix. Every multi-byte qcow2 field is big-endian.

export const QCOW_MAGIC = 'QFI\xfb';

export const QCOW2_VERSION_2 = 2;
export const QCOW2_VERSION_3 = 3;

/** qemu opens cluster_bits 9..21 (512 B .. 2 MiB). */
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** Extended L2 needs subclusters of at least 512 bytes: clusters of at least 16 KiB. */
export const MIN_EXTENDED_L2_CLUSTER_BITS = 14;

export const QCOW2_V2_HEADER_LENGTH = 72;
export const QCOW2_V3_MIN_HEADER_LENGTH = 104;

export const QCOW_CRYPT_NONE = 0;
export const QCOW_CRYPT_AES = 1;
export const QCOW_CRYPT_LUKS = 2;

// Incompatible feature bits.
export const QCOW2_INCOMPAT_DIRTY = 1n << 0n;
export const QCOW2_INCOMPAT_CORRUPT = 1n << 1n;
export const QCOW2_INCOMPAT_DATA_FILE = 1n << 2n;
export const QCOW2_INCOMPAT_COMPRESSION = 1n << 3n;
export const QCOW2_INCOMPAT_EXTL2 = 1n << 4n;
export const QCOW2_INCOMPAT_KNOWN =
  QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_EXTL2;

// Autoclear feature bits.
export const QCOW2_AUTOCLEAR_BITMAPS = 1n << 0n;
export const QCOW2_AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;

export const QCOW2_COMPRESSION_TYPE_ZLIB = 0;
export const QCOW2_COMPRESSION_TYPE_ZSTD = 1;

// Header extension types.
export const QCOW2_EXT_MAGIC_END = 0x00000000;
export const QCOW2_EXT_MAGIC_BACKING_FORMAT = 0xe2792aca;
export const QCOW2_EXT_MAGIC_FEATURE_TABLE = 0x6803f857;
export const QCOW2_EXT_MAGIC_CRYPTO_HEADER = 0x0537be77;
export const QCOW2_EXT_MAGIC_BITMAPS = 0x23852875;
export const QCOW2_EXT_MAGIC_DATA_FILE = 0x44415441;

/** qemu: a backing file name is at most 1023 bytes; a backing format name under 16. */
export const MAX_BACKING_FILE_NAME_BYTES = 1023;
export const MAX_BACKING_FORMAT_NAME_BYTES = 15;

// qemu's implementation limits (qcow2.h).
export const QCOW_MAX_L1_SIZE_BYTES = 32 * 1024 * 1024;
export const QCOW_MAX_REFTABLE_SIZE_BYTES = 8 * 1024 * 1024;
export const QCOW_MAX_SNAPSHOTS = 65536;
export const QCOW_MAX_SNAPSHOTS_SIZE_BYTES = 64 * 1024 * 1024;
export const QCOW_MAX_SNAPSHOT_EXTRA_DATA = 1024;
export const QCOW2_MAX_BITMAPS = 65535;
export const QCOW2_MAX_BITMAP_DIRECTORY_SIZE = 1024 * QCOW2_MAX_BITMAPS;
export const MAX_REFCOUNT_ORDER = 6;

// L1 entry (u64), split into the high and low 32-bit words the reader decodes.
/** Reserved bits 56..62 of the high word and 0..8 of the low word (mask 0x7F000000000001FF). */
export const L1E_RESERVED_HIGH = 0x7f000000;
export const L1E_RESERVED_LOW = 0x000001ff;
/** Offset bits 9..55 (mask 0x00FFFFFFFFFFFE00). */
export const L1E_OFFSET_MASK_HIGH = 0x00ffffff;
export const L1E_OFFSET_MASK_LOW = 0xfffffe00;

// L2 entry (u64), same split.
export const QCOW_OFLAG_COPIED_HIGH = 0x80000000;
export const QCOW_OFLAG_COMPRESSED_HIGH = 0x40000000;
export const QCOW_OFLAG_ZERO_LOW = 0x00000001;
/** Reserved bits of a standard, non-compressed entry (mask 0x3F000000000001FE). */
export const L2E_STD_RESERVED_HIGH = 0x3f000000;
export const L2E_STD_RESERVED_LOW = 0x000001fe;
/** In an extended L2 entry bit 0 is reserved too (zeros live in the subcluster bitmap). */
export const L2E_EXT_RESERVED_LOW = 0x000001ff;
export const L2E_OFFSET_MASK_HIGH = 0x00ffffff;
export const L2E_OFFSET_MASK_LOW = 0xfffffe00;

/** Extended L2: 32 subclusters per cluster; bitmap bits 0..31 allocated, 32..63 reads as zeros. */
export const QCOW_EXTL2_SUBCLUSTERS_PER_CLUSTER = 32;

/** Compressed cluster descriptors count 512-byte sectors. */
export const QCOW2_COMPRESSED_SECTOR_SIZE = 512;

/** zstd frame magics (little-endian u32). */
export const ZSTD_FRAME_MAGIC = 0xfd2fb528;
export const ZSTD_SKIPPABLE_MAGIC_MASK = 0xfffffff0;
export const ZSTD_SKIPPABLE_MAGIC = 0x184d2a50;
export const ZSTD_MAX_BLOCK_BYTES = 128 * 1024;

// Full 64-bit flag values, for the writer (the reader above tests the split 32-bit words).
export const QCOW_OFLAG_COPIED = 1n << 63n;
export const QCOW_OFLAG_COMPRESSED = 1n << 62n;

// What sbm's qcow2 writer makes: version 3, 64 KiB clusters, 16-bit refcounts, deflate.
export const WRITE_CLUSTER_BITS = 16;
export const WRITE_REFCOUNT_ORDER = 4;
/** 104 bytes of fields, the compression type byte and 7 bytes of padding, as qemu-img writes. */
export const WRITE_HEADER_LENGTH = 112;
/** qemu deflates compressed clusters with a 12-bit window (qcow2-threads.c), and inflates with one. */
export const QCOW2_DEFLATE_WINDOW_BITS = 12;
