// One L2 entry, decoded from its two big-endian 32-bit words (plus the subcluster bitmap with
// extended L2), classified in qemu's order: compressed, zero flag, unallocated, normal.
//
//   compressed:  x = 70 - cluster_bits; bits 0..x-1 host byte offset, bits x..61 the number of
//                512-byte sectors used past the one holding the offset
//   normal:      bits 9..55 host cluster offset; bit 0 zero flag (standard entries only)
//   extended L2: bitmap bit i = subcluster i allocated, bit 32+i = subcluster i reads as zeros

import { SbmError } from '../../lib/errors.js';
import {
  L2E_EXT_RESERVED_LOW,
  L2E_OFFSET_MASK_HIGH,
  L2E_OFFSET_MASK_LOW,
  L2E_STD_RESERVED_HIGH,
  L2E_STD_RESERVED_LOW,
  QCOW2_COMPRESSED_SECTOR_SIZE,
  QCOW_EXTL2_SUBCLUSTERS_PER_CLUSTER,
  QCOW_OFLAG_COMPRESSED_HIGH,
  QCOW_OFLAG_COPIED_HIGH,
  QCOW_OFLAG_ZERO_LOW,
} from './constants.js';
import type { Qcow2Header } from './qcow2-header.js';

const TWO_POW_32 = 0x1_0000_0000;

/** Host byte offset held in bits 9..55 of an L1 or L2 entry given as two 32-bit words. */
export function entryOffset(high: number, low: number, highMask: number, lowMask: number): number {
  return (high & highMask) * TWO_POW_32 + ((low & lowMask) >>> 0);
}

/** What one guest cluster is. `subclusters`: extended L2 with a mix (see the bitmaps). */
export interface ClusterEntry {
  kind: 'unallocated' | 'zero' | 'data' | 'compressed' | 'subclusters';
  /** data/subclusters: host offset of the cluster; compressed: host byte offset of the stream. */
  host: number;
  /** compressed: bytes from `host` to the end of the stream's last sector. */
  compressedLength: number;
  /** subclusters: bit i = subcluster i allocated / reads as zeros. */
  allocBits: number;
  zeroBits: number;
}

export function emptyEntry(): ClusterEntry {
  return { kind: 'unallocated', host: 0, compressedLength: 0, allocBits: 0, zeroBits: 0 };
}

/** Decodes the entry at `position` of an L2 table into `out` (reused: the read loop allocates nothing). */
export function decodeL2Entry(table: Buffer, position: number, header: Qcow2Header, out: ClusterEntry): ClusterEntry {
  const high = table.readUInt32BE(position);
  const low = table.readUInt32BE(position + 4);
  out.allocBits = 0;
  out.zeroBits = 0;
  out.compressedLength = 0;
  if ((high & QCOW_OFLAG_COMPRESSED_HIGH) !== 0) {
    const shift = BigInt(70 - header.clusterBits);
    const value = (BigInt(high & 0x3fffffff) << 32n) | BigInt(low >>> 0);
    const host = Number(value & ((1n << shift) - 1n));
    const extra = Number((value >> shift) & ((1n << BigInt(header.clusterBits - 8)) - 1n));
    out.kind = 'compressed';
    out.host = host;
    out.compressedLength = (extra + 1) * QCOW2_COMPRESSED_SECTOR_SIZE - (host % QCOW2_COMPRESSED_SECTOR_SIZE);
    return out;
  }
  out.host = entryOffset(high, low, L2E_OFFSET_MASK_HIGH, L2E_OFFSET_MASK_LOW);
  if (header.extendedL2) {
    out.allocBits = table.readUInt32BE(position + 12);
    out.zeroBits = table.readUInt32BE(position + 8);
    const all = 0xffffffff;
    if (out.zeroBits === all) out.kind = 'zero';
    else if (out.allocBits === all && out.host !== 0) out.kind = 'data';
    else if (out.allocBits === 0 && out.zeroBits === 0) out.kind = 'unallocated';
    else out.kind = 'subclusters';
    return out;
  }
  if ((low & QCOW_OFLAG_ZERO_LOW) !== 0) out.kind = 'zero';
  else out.kind = out.host === 0 ? 'unallocated' : 'data';
  return out;
}

export interface EntryCheck {
  readonly header: Qcow2Header;
  readonly path: string;
  readonly fileSize: number;
  /** [start, end) byte ranges of cluster 0, the L1 table and the refcount table. */
  readonly fixed: ReadonlyArray<readonly [number, number]>;
  /** Host cluster indexes holding L2 tables. */
  readonly l2Clusters: ReadonlySet<number>;
}

const scratch = emptyEntry();

/**
 * Validates the entry of guest cluster `guestCluster` and says what it counts as: data (plain or
 * partly allocated subclusters), compressed, zero, or unallocated. Throws SBM_CORRUPT.
 */
export function checkL2Entry(
  table: Buffer,
  position: number,
  guestCluster: number,
  check: EntryCheck,
): 'unallocated' | 'zero' | 'data' | 'compressed' {
  const { header, path, fileSize } = check;
  const clusterSize = header.clusterSize;
  const bad = (why: string): SbmError =>
    new SbmError('SBM_CORRUPT', `${path}: L2 entry of guest cluster ${guestCluster} ${why}`, { path, guestCluster });
  const high = table.readUInt32BE(position);
  const low = table.readUInt32BE(position + 4);
  const entry = decodeL2Entry(table, position, header, scratch);
  if (entry.kind === 'compressed') {
    if ((high & QCOW_OFLAG_COPIED_HIGH) !== 0) throw bad('is compressed with the copied flag set');
    if (header.extendedL2 && (table.readUInt32BE(position + 8) !== 0 || table.readUInt32BE(position + 12) !== 0))
      throw bad('is compressed with a subcluster bitmap');
    const fileEnd = Math.ceil(fileSize / QCOW2_COMPRESSED_SECTOR_SIZE) * QCOW2_COMPRESSED_SECTOR_SIZE;
    if (entry.host < clusterSize || entry.host + entry.compressedLength > fileEnd) {
      throw bad(`points at compressed data (${entry.compressedLength} bytes at ${entry.host}) outside the data area of the file`);
    }
    return 'compressed';
  }
  const reservedLow = header.extendedL2 ? L2E_EXT_RESERVED_LOW : L2E_STD_RESERVED_LOW;
  if ((high & L2E_STD_RESERVED_HIGH) !== 0 || (low & reservedLow) !== 0) throw bad('has reserved bits set or an unaligned offset');
  if (entry.host % clusterSize !== 0) throw bad(`points at ${entry.host}, not a cluster boundary`);
  if (header.extendedL2 && (entry.allocBits & entry.zeroBits) !== 0) throw bad('marks a subcluster both allocated and zero');
  if (header.extendedL2 && entry.allocBits !== 0 && entry.host === 0) throw bad('marks subclusters allocated without a host cluster');
  if (entry.kind === 'zero' || entry.kind === 'unallocated') return entry.kind;
  // Bytes of the host cluster the disk reads: up to the disk's end, and with subclusters up to
  // the last allocated one (qemu writes only those, so the file may end inside the cluster).
  const guestStart = guestCluster * clusterSize;
  let needed = Math.min(clusterSize, header.sizeBytes - guestStart);
  if (entry.kind === 'subclusters') {
    const subclusterSize = clusterSize / QCOW_EXTL2_SUBCLUSTERS_PER_CLUSTER;
    needed = Math.min(needed, (32 - Math.clz32(entry.allocBits)) * subclusterSize);
    if (entry.allocBits === 0) return 'zero';
  }
  if (entry.host < clusterSize || entry.host + needed > fileSize) throw bad(`points at ${entry.host}, outside the data area of the file`);
  const hostCluster = entry.host / clusterSize;
  if (check.l2Clusters.has(hostCluster) || check.fixed.some(([start, end]) => entry.host < end && entry.host + clusterSize > start)) {
    throw bad(`points at ${entry.host}, which holds metadata (header, L1, L2 or refcount table)`);
  }
  return 'data';
}
