// The hosted sparse extent header (VDF5 "SparseExtentHeader", 512 bytes at offset 0 of a
// monolithicSparse, twoGbMaxExtentSparse or streamOptimized extent; also the streamOptimized
// footer, which is a copy of it with the real gdOffset).
//
//   0 magicNumber "KDMV"   4 version   8 flags   12 capacity   20 grainSize   28 descriptorOffset
//   36 descriptorSize   44 numGTEsPerGT   48 rgdOffset   56 gdOffset   64 overHead
//   72 uncleanShutdown   73..76 newline test "\n \r\n"   77 compressAlgorithm   79 pad[433]

import { type StructValues, decodeStruct, defineStruct, encodeStruct } from './binary-struct.js';

export const SPARSE_EXTENT_HEADER = defineStruct('VMDK sparse extent header', 512, [
  { name: 'magicNumber', offset: 0, size: 4, type: 'u32' },
  { name: 'version', offset: 4, size: 4, type: 'u32' },
  { name: 'flags', offset: 8, size: 4, type: 'u32' },
  { name: 'capacity', offset: 12, size: 8, type: 'u64' },
  { name: 'grainSize', offset: 20, size: 8, type: 'u64' },
  { name: 'descriptorOffset', offset: 28, size: 8, type: 'u64' },
  { name: 'descriptorSize', offset: 36, size: 8, type: 'u64' },
  { name: 'numGTEsPerGT', offset: 44, size: 4, type: 'u32' },
  { name: 'rgdOffset', offset: 48, size: 8, type: 'u64' },
  { name: 'gdOffset', offset: 56, size: 8, type: 'u64' },
  { name: 'overHead', offset: 64, size: 8, type: 'u64' },
  { name: 'uncleanShutdown', offset: 72, size: 1, type: 'u8' },
  { name: 'singleEndLineChar', offset: 73, size: 1, type: 'u8' },
  { name: 'nonEndLineChar', offset: 74, size: 1, type: 'u8' },
  { name: 'doubleEndLineChar1', offset: 75, size: 1, type: 'u8' },
  { name: 'doubleEndLineChar2', offset: 76, size: 1, type: 'u8' },
  { name: 'compressAlgorithm', offset: 77, size: 2, type: 'u16' },
  { name: 'pad', offset: 79, size: 433, type: 'bytes' },
] as const);

export interface SparseExtentHeader {
  readonly magicNumber: number;
  readonly version: number;
  readonly flags: number;
  readonly capacity: bigint;
  readonly grainSize: bigint;
  readonly descriptorOffset: bigint;
  readonly descriptorSize: bigint;
  readonly numGTEsPerGT: number;
  readonly rgdOffset: bigint;
  readonly gdOffset: bigint;
  readonly overHead: bigint;
  readonly uncleanShutdown: number;
  readonly singleEndLineChar: number;
  readonly nonEndLineChar: number;
  readonly doubleEndLineChar1: number;
  readonly doubleEndLineChar2: number;
  readonly compressAlgorithm: number;
}

export function decodeSparseHeader(data: Uint8Array, at = 0): SparseExtentHeader {
  const raw = decodeStruct(SPARSE_EXTENT_HEADER, data, at);
  return raw as unknown as SparseExtentHeader;
}

export function encodeSparseHeader(header: SparseExtentHeader): Buffer {
  return encodeStruct(SPARSE_EXTENT_HEADER, header as unknown as Partial<StructValues<(typeof SPARSE_EXTENT_HEADER.fields)[number]['name']>>);
}

/** Grain marker (streamOptimized): lba u64, size u32, then `size` compressed bytes. */
export const GRAIN_MARKER = defineStruct('VMDK grain marker', 12, [
  { name: 'lba', offset: 0, size: 8, type: 'u64' },
  { name: 'size', offset: 8, size: 4, type: 'u32' },
] as const);

/** Metadata marker (streamOptimized): numSectors u64, size u32 = 0, type u32, pad to a sector. */
export const METADATA_MARKER = defineStruct('VMDK metadata marker', 512, [
  { name: 'numSectors', offset: 0, size: 8, type: 'u64' },
  { name: 'size', offset: 8, size: 4, type: 'u32' },
  { name: 'type', offset: 12, size: 4, type: 'u32' },
  { name: 'pad', offset: 16, size: 496, type: 'bytes' },
] as const);
