// Sparse bundle constants, with the names and units of ../shared/reference/sparsebundle-format.md.

export const MIB = 1024 * 1024;
export const DEFAULT_BAND_SIZE_BYTES = 8 * MIB;
export const MIN_BAND_SIZE_BYTES = 1 * MIB;
export const MAX_BAND_SIZE_BYTES = 8 * 1024 * MIB;
export const BAND_SIZE_ALIGNMENT_BYTES = 4096;
/** Sizes on disk are whole 512-byte sectors (hdiutil writes such sizes). */
export const SIZE_ALIGNMENT_BYTES = 512;
/** Apple accepts 2^57; sbm stops at 2^52 (4 PiB) so every offset is an exact JS number. */
export const MAX_SIZE_BYTES = 2 ** 52;
/** Empirical macOS comfort limit on band files per bundle. */
export const BAND_COUNT_ADVICE = 100_000;
/** DI2 reads only this much of Info.plist; longer files count as unreadable. */
export const INFO_PLIST_MAX_BYTES = 1024;
export const BUNDLE_TYPE = 'com.apple.diskimage.sparsebundle';
export const INFO_DICTIONARY_VERSION = '6.0';
/** mapped/ bitmaps: one bit per 4 KiB block, least significant bit first. */
export const MAPPED_BLOCK_BYTES = 4096;
/** Tokens of encrypted bundles start with this. */
export const ENCRYPTED_TOKEN_MAGIC = 'encrcdsa';
