// The structures sbm's qcow2 writer emits beyond the header fields the reader declares
// (qcow2-header.ts): the compression-type byte that ends a 112-byte v3 header, the u64 entries of
// the L1, L2 and refcount tables, and the 16-bit entries of a refcount block (refcount_order 4).
//
//   header  0..71 QCOW2_HEADER_V2 | 72..103 QCOW2_HEADER_V3_TAIL | 104 compression_type | 105..111 pad
//   L1 / L2 / refcount table: big-endian u64 per entry
//   refcount block: big-endian u16 per host cluster

import { defineLayout } from '../../lib/binary-layout.js';

export const QCOW2_HEADER_COMPRESSION_FIELD = defineLayout('qcow2 compression type field', 8, 'be', [
  { name: 'compressionType', offset: 0, type: 'u8' },
  { name: 'padding', offset: 1, type: 'bytes', size: 7 },
] as const);

/** One L1, L2 (standard, not extended) or refcount table entry. */
export const QCOW2_TABLE_ENTRY = defineLayout('qcow2 table entry', 8, 'be', [{ name: 'value', offset: 0, type: 'u64' }] as const);

/** One refcount of a refcount block with 16-bit refcounts. */
export const QCOW2_REFCOUNT16 = defineLayout('qcow2 16-bit refcount', 2, 'be', [{ name: 'refcount', offset: 0, type: 'u16' }] as const);
