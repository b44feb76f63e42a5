// The fixed part of a qcow2 that sbm writes, computed from the virtual size before any data is
// read: the header cluster, then the L1 table, sized for the whole disk. Everything after them
// is appended as the data arrives (host-writer.ts), and the header, which points at the refcount
// table placed last, is written when the rest is done.
//
//   cluster 0         header (112 bytes, no extensions: the zero bytes after it end the list)
//   clusters 1..L     L1 table, ceil(size / 512 MiB) entries (0 entries and offset 0 for an empty disk)

import { SbmError } from '../../lib/errors.js';
import {
  QCOW2_COMPRESSION_TYPE_ZLIB,
  QCOW2_V2_HEADER_LENGTH,
  QCOW2_V3_MIN_HEADER_LENGTH,
  QCOW2_VERSION_3,
  QCOW_CRYPT_NONE,
  QCOW_MAGIC,
  QCOW_MAX_L1_SIZE_BYTES,
  WRITE_CLUSTER_BITS,
  WRITE_HEADER_LENGTH,
  WRITE_REFCOUNT_ORDER,
} from './constants.js';
import { QCOW2_HEADER_V2, QCOW2_HEADER_V3_TAIL } from './qcow2-header.js';
import { QCOW2_HEADER_COMPRESSION_FIELD, QCOW2_TABLE_ENTRY } from './write-layouts.js';

export interface WriteGeometry {
  readonly clusterBits: number;
  readonly clusterSize: number;
  /** The header's size: the source's size rounded up to 512 bytes, as qemu-img requires. */
  readonly virtualSizeBytes: number;
  readonly l2Entries: number;
  /** Guest bytes one L2 table maps (512 MiB with 64 KiB clusters). */
  readonly l2CoverageBytes: number;
  readonly l1Size: number;
  readonly l1Clusters: number;
  /** 0 for an empty disk, as qemu-img writes it. */
  readonly l1TableOffset: number;
}

/** `clusterBits` other than 16 only for tests: small clusters exercise many tables on small disks. */
export function writeGeometry(sourceSizeBytes: number, path: string, clusterBits = WRITE_CLUSTER_BITS): WriteGeometry {
  const clusterSize = 2 ** clusterBits;
  const virtualSizeBytes = Math.ceil(sourceSizeBytes / 512) * 512;
  const l2Entries = clusterSize / QCOW2_TABLE_ENTRY.sizeBytes;
  const l2CoverageBytes = clusterSize * l2Entries;
  const l1Size = Math.ceil(virtualSizeBytes / l2CoverageBytes);
  if (l1Size * QCOW2_TABLE_ENTRY.sizeBytes > QCOW_MAX_L1_SIZE_BYTES) {
    throw new SbmError(
      'SBM_BAD_SIZE',
      `${path}: a ${sourceSizeBytes}-byte disk needs a qcow2 L1 table larger than qemu's 32 MiB limit (2 PiB with 64 KiB clusters)`,
      { path, sizeBytes: sourceSizeBytes },
    );
  }
  const l1Clusters = Math.ceil((l1Size * QCOW2_TABLE_ENTRY.sizeBytes) / clusterSize);
  return {
    clusterBits,
    clusterSize,
    virtualSizeBytes,
    l2Entries,
    l2CoverageBytes,
    l1Size,
    l1Clusters,
    l1TableOffset: l1Size === 0 ? 0 : clusterSize,
  };
}

/** Cluster 0: a version 3 header with no backing file, no extensions and deflate compression. */
export function encodeHeaderCluster(geometry: WriteGeometry, refcountTableOffset: number, refcountTableClusters: number): Buffer {
  const cluster = Buffer.alloc(geometry.clusterSize);
  QCOW2_HEADER_V2.encode(
    {
      magic: Buffer.from(QCOW_MAGIC, 'latin1'),
      version: QCOW2_VERSION_3,
      backingFileOffset: 0n,
      backingFileSize: 0,
      clusterBits: geometry.clusterBits,
      size: BigInt(geometry.virtualSizeBytes),
      cryptMethod: QCOW_CRYPT_NONE,
      l1Size: geometry.l1Size,
      l1TableOffset: BigInt(geometry.l1TableOffset),
      refcountTableOffset: BigInt(refcountTableOffset),
      refcountTableClusters,
      nbSnapshots: 0,
      snapshotsOffset: 0n,
    },
    cluster,
    0,
  );
  QCOW2_HEADER_V3_TAIL.encode(
    {
      incompatibleFeatures: 0n,
      compatibleFeatures: 0n,
      autoclearFeatures: 0n,
      refcountOrder: WRITE_REFCOUNT_ORDER,
      headerLength: WRITE_HEADER_LENGTH,
    },
    cluster,
    QCOW2_V2_HEADER_LENGTH,
  );
  QCOW2_HEADER_COMPRESSION_FIELD.encode({ compressionType: QCOW2_COMPRESSION_TYPE_ZLIB }, cluster, QCOW2_V3_MIN_HEADER_LENGTH);
  return cluster;
}
