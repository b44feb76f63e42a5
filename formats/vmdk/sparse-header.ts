// The hosted sparse extent header (VDF5 "SparseExtentHeader", 512 bytes at offset 0 of a
// monolithicSparse, twoGbMaxExtentSparse or streamOptimized extent; also the streamOptimized
// footer, which is a copy of it with the real gdOffset).
//
//   0 magicNumber "KDMV"   4 version   8 flags   12 capacity   20 grainSize   28 descriptorOffset
//   36 descriptorSize   44 numGTEsPerGT   48 rgdOffset   56 gdOffset   64 overHead
//   72 uncleanShutdown   73..76 newline test "\n \r\n"   77 compressAlgorithm   79 pad[433]

import { type LayoutInput, type LayoutValues, defineLayout } from '../../lib/binary-layout.js';

export const SPARSE_EXTENT_HEADER = defineLayout('VMDK sparse extent header', 512, 'le', [
  { name: 'magicNumber', offset: 0, type: 'u32' },
  { name: 'version', offset: 4, type: 'u32' },
  { name: 'flags', offset: 8, type: 'u32' },
  { name: 'capacity', offset: 12, type: 'u64' },
  { name: 'grainSize', offset: 20, type: 'u64' },
  { name: 'descriptorOffset', offset: 28, type: 'u64' },
  { name: 'descriptorSize', offset: 36, type: 'u64' },
  { name: 'numGTEsPerGT', offset: 44, type: 'u32' },
  { name: 'rgdOffset', offset: 48, type: 'u64' },
  { name: 'gdOffset', offset: 56, type: 'u64' },
  { name: 'overHead', offset: 64, type: 'u64' },
  { name: 'uncleanShutdown', offset: 72, type: 'u8' },
  { name: 'singleEndLineChar', offset: 73, type: 'u8' },
  { name: 'nonEndLineChar', offset: 74, type: 'u8' },
  { name: 'doubleEndLineChar1', offset: 75, type: 'u8' },
  { name: 'doubleEndLineChar2', offset: 76, type: 'u8' },
  { name: 'compressAlgorithm', offset: 77, type: 'u16' },
  { name: 'pad', offset: 79, size: 433, type: 'bytes' },
] as const);

/** The header's fields (capacity and offsets as bigint, narrowed by sparse-header-check.ts). */
export type SparseExtentHeader = Omit<LayoutValues<typeof SPARSE_EXTENT_HEADER.fields>, 'pad'>;

/** Decodes a header at `at`; a buffer too short for it is SBM_CORRUPT naming `path`. */
export function decodeSparseHeader(data: Uint8Array, at = 0, path?: string): SparseExtentHeader {
  return SPARSE_EXTENT_HEADER.decode(data, at, path);
}

export function encodeSparseHeader(header: SparseExtentHeader): Buffer {
  return SPARSE_EXTENT_HEADER.encode(header satisfies LayoutInput<typeof SPARSE_EXTENT_HEADER.fields>);
}

/** Grain marker (streamOptimized): lba u64, size u32, then `size` compressed bytes. */
export const GRAIN_MARKER = defineLayout('VMDK grain marker', 12, 'le', [
  { name: 'lba', offset: 0, type: 'u64' },
  { name: 'size', offset: 8, type: 'u32' },
] as const);

/** Metadata marker (streamOptimized): numSectors u64, size u32 = 0, type u32, pad to a sector. */
export const METADATA_MARKER = defineLayout('VMDK metadata marker', 512, 'le', [
  { name: 'numSectors', offset: 0, type: 'u64' },
  { name: 'size', offset: 8, type: 'u32' },
  { name: 'type', offset: 12, type: 'u32' },
  { name: 'pad', offset: 16, size: 496, type: 'bytes' },
] as const);

/** The first u32 of every extent file: the sparse (KDMV, kdmv) or COWD magic, or text of a descriptor. */
const EXTENT_MAGIC = defineLayout('VMDK extent magic', 4, 'le', [{ name: 'magicNumber', offset: 0, type: 'u32' }] as const);
const readMagicNumber = EXTENT_MAGIC.reader('magicNumber');

/** The extent magic of a file's first bytes, or 0 when they are too short to hold one. */
export function extentMagicOf(head: Buffer): number {
  return head.length >= EXTENT_MAGIC.sizeBytes ? readMagicNumber(head, 0) : 0;
}
