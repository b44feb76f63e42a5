// The qcow2 header (cluster 0): the version 2 fields, the version 3 additions, and the checks
// that run before any other structure is touched. Order: magic, version, cluster size, header
// length, encryption, feature bits, then sizes, each bounded.
//
//   0   magic "QFI\xfb"        20  cluster_bits           48  refcount_table_offset
//   4   version (2 or 3)       24  size (bytes)           56  refcount_table_clusters
//   8   backing_file_offset    32  crypt_method           60  nb_snapshots
//   16  backing_file_size      36  l1_size                64  snapshots_offset
//                              40  l1_table_offset        72  (v3) feature words, refcount_order,
//                                                             header_length, compression_type

import { defineLayout, toSafeInteger } from '../../lib/binary-layout.js';
import { SbmError } from '../../lib/errors.js';
import {
  MAX_CLUSTER_BITS,
  MAX_REFCOUNT_ORDER,
  MIN_CLUSTER_BITS,
  MIN_EXTENDED_L2_CLUSTER_BITS,
  QCOW2_COMPRESSION_TYPE_ZLIB,
  QCOW2_COMPRESSION_TYPE_ZSTD,
  QCOW2_INCOMPAT_COMPRESSION,
  QCOW2_INCOMPAT_CORRUPT,
  QCOW2_INCOMPAT_DATA_FILE,
  QCOW2_INCOMPAT_DIRTY,
  QCOW2_INCOMPAT_EXTL2,
  QCOW2_INCOMPAT_KNOWN,
  QCOW2_V2_HEADER_LENGTH,
  QCOW2_V3_MIN_HEADER_LENGTH,
  QCOW2_VERSION_2,
  QCOW2_VERSION_3,
  QCOW_CRYPT_AES,
  QCOW_CRYPT_LUKS,
  QCOW_CRYPT_NONE,
  QCOW_MAGIC,
  QCOW_MAX_L1_SIZE_BYTES,
  QCOW_MAX_REFTABLE_SIZE_BYTES,
  QCOW_MAX_SNAPSHOTS,
} from './constants.js';
import { type HeaderExtensions, featureNames, readHeaderExtensions } from './header-extensions.js';

export const QCOW2_HEADER_V2 = defineLayout('qcow2 header', QCOW2_V2_HEADER_LENGTH, 'be', [
  { name: 'magic', offset: 0, type: 'bytes', size: 4, equals: QCOW_MAGIC },
  { name: 'version', offset: 4, type: 'u32' },
  { name: 'backingFileOffset', offset: 8, type: 'u64' },
  { name: 'backingFileSize', offset: 16, type: 'u32' },
  { name: 'clusterBits', offset: 20, type: 'u32' },
  { name: 'size', offset: 24, type: 'u64' },
  { name: 'cryptMethod', offset: 32, type: 'u32' },
  { name: 'l1Size', offset: 36, type: 'u32' },
  { name: 'l1TableOffset', offset: 40, type: 'u64' },
  { name: 'refcountTableOffset', offset: 48, type: 'u64' },
  { name: 'refcountTableClusters', offset: 56, type: 'u32' },
  { name: 'nbSnapshots', offset: 60, type: 'u32' },
  { name: 'snapshotsOffset', offset: 64, type: 'u64' },
] as const);

/** Version 3 fields, at offset 72. compression_type (byte 104) exists only when header_length > 104. */
export const QCOW2_HEADER_V3_TAIL = defineLayout('qcow2 version 3 header fields', 32, 'be', [
  { name: 'incompatibleFeatures', offset: 0, type: 'u64' },
  { name: 'compatibleFeatures', offset: 8, type: 'u64' },
  { name: 'autoclearFeatures', offset: 16, type: 'u64' },
  { name: 'refcountOrder', offset: 24, type: 'u32' },
  { name: 'headerLength', offset: 28, type: 'u32' },
] as const);

export interface Qcow2Header {
  readonly version: number;
  readonly clusterBits: number;
  readonly clusterSize: number;
  /** Virtual size as qemu exposes it: the header's size rounded down to 512 bytes. */
  readonly sizeBytes: number;
  readonly l1Size: number;
  readonly l1TableOffset: number;
  readonly refcountTableOffset: number;
  readonly refcountTableClusters: number;
  readonly nbSnapshots: number;
  readonly snapshotsOffset: number;
  readonly incompatibleFeatures: bigint;
  readonly autoclearFeatures: bigint;
  readonly refcountOrder: number;
  readonly headerLength: number;
  readonly compressionType: number;
  readonly extendedL2: boolean;
  readonly dirty: boolean;
  readonly backingFile: string | undefined;
  readonly extensions: HeaderExtensions;
}

function corrupt(path: string, why: string): SbmError {
  return new SbmError('SBM_CORRUPT', `${path}: ${why}`, { path });
}

function unsupported(path: string, why: string): SbmError {
  return new SbmError('SBM_UNSUPPORTED', `${path}: ${why}`, { path });
}

function aligned(value: number, clusterSize: number): boolean {
  return value % clusterSize === 0;
}

/**
 * Decodes and validates the header from `head` (the file's first cluster, or all of a shorter
 * file). Throws SBM_CORRUPT for damage and SBM_UNSUPPORTED for features sbm does not read.
 */
export function parseQcow2Header(head: Buffer, fileSize: number, path: string): Qcow2Header {
  const v2 = QCOW2_HEADER_V2.decode(head, 0, path);
  if (v2.version === 1) throw unsupported(path, 'qcow version 1 images are not supported (convert with qemu-img first)');
  if (v2.version !== QCOW2_VERSION_2 && v2.version !== QCOW2_VERSION_3) throw unsupported(path, `unknown qcow2 version ${v2.version}`);
  if (v2.clusterBits < MIN_CLUSTER_BITS || v2.clusterBits > MAX_CLUSTER_BITS) {
    throw corrupt(path, `cluster_bits ${v2.clusterBits} is outside 9..21 (512 bytes to 2 MiB)`);
  }
  const clusterSize = 2 ** v2.clusterBits;
  let incompatibleFeatures = 0n;
  let autoclearFeatures = 0n;
  let refcountOrder = 4;
  let headerLength = QCOW2_V2_HEADER_LENGTH;
  let compressionType = QCOW2_COMPRESSION_TYPE_ZLIB;
  if (v2.version === QCOW2_VERSION_3) {
    const v3 = QCOW2_HEADER_V3_TAIL.decode(head, QCOW2_V2_HEADER_LENGTH, path);
    ({ incompatibleFeatures, autoclearFeatures, refcountOrder, headerLength } = v3);
    if (headerLength < QCOW2_V3_MIN_HEADER_LENGTH || headerLength % 8 !== 0 || headerLength > clusterSize) {
      throw corrupt(path, `header_length ${headerLength} is not a multiple of 8 between 104 and the cluster size`);
    }
    if (head.length < headerLength) throw corrupt(path, `the file ends inside the header (${head.length} of ${headerLength} bytes)`);
    if (headerLength > QCOW2_V3_MIN_HEADER_LENGTH) compressionType = head.readUInt8(QCOW2_V3_MIN_HEADER_LENGTH);
  }
  if (v2.cryptMethod !== QCOW_CRYPT_NONE) {
    const kind = v2.cryptMethod === QCOW_CRYPT_AES ? 'AES' : v2.cryptMethod === QCOW_CRYPT_LUKS ? 'LUKS' : `method ${v2.cryptMethod}`;
    throw unsupported(path, `encrypted qcow2 images (${kind}) are not supported`);
  }
  const backingFileOffset = toSafeInteger(v2.backingFileOffset, 'backing_file_offset', path);
  const extensions = readHeaderExtensions(head, headerLength, backingFileOffset === 0 ? clusterSize : backingFileOffset, clusterSize, path);
  checkFeatures(path, incompatibleFeatures, extensions);
  const extendedL2 = (incompatibleFeatures & QCOW2_INCOMPAT_EXTL2) !== 0n;
  if (extendedL2 && v2.clusterBits < MIN_EXTENDED_L2_CLUSTER_BITS) {
    throw corrupt(path, `extended L2 entries need clusters of at least 16 KiB (cluster size ${clusterSize})`);
  }
  checkCompression(path, incompatibleFeatures, compressionType);
  if (refcountOrder > MAX_REFCOUNT_ORDER) throw corrupt(path, `refcount_order ${refcountOrder} is larger than 6`);

  const header = {
    version: v2.version,
    clusterBits: v2.clusterBits,
    clusterSize,
    sizeBytes: Math.floor(toSafeInteger(v2.size, 'virtual size', path) / 512) * 512,
    l1Size: v2.l1Size,
    l1TableOffset: toSafeInteger(v2.l1TableOffset, 'l1_table_offset', path),
    refcountTableOffset: toSafeInteger(v2.refcountTableOffset, 'refcount_table_offset', path),
    refcountTableClusters: v2.refcountTableClusters,
    nbSnapshots: v2.nbSnapshots,
    snapshotsOffset: toSafeInteger(v2.snapshotsOffset, 'snapshots_offset', path),
    incompatibleFeatures,
    autoclearFeatures,
    refcountOrder,
    headerLength,
    compressionType,
    extendedL2,
    dirty: (incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) !== 0n,
    backingFile: readBackingName(head, backingFileOffset, v2.backingFileSize, clusterSize, path),
    extensions,
  };
  checkTables(header, fileSize, path);
  return header;
}

function checkFeatures(path: string, incompatible: bigint, extensions: HeaderExtensions): void {
  if ((incompatible & QCOW2_INCOMPAT_CORRUPT) !== 0n) {
    throw corrupt(path, 'qemu marked this image corrupt (incompatible feature bit 1); repair it with `qemu-img check -r all` first');
  }
  if ((incompatible & QCOW2_INCOMPAT_DATA_FILE) !== 0n || extensions.dataFile !== undefined) {
    const name = extensions.dataFile === undefined ? '' : ` ("${extensions.dataFile}")`;
    throw unsupported(path, `qcow2 images with an external data file${name} are not supported`);
  }
  const unknown = incompatible & ~QCOW2_INCOMPAT_KNOWN;
  if (unknown !== 0n) {
    const names = featureNames(extensions.featureTable, 0, unknown);
    throw unsupported(
      path,
      `unknown incompatible qcow2 feature(s) 0x${unknown.toString(16)}${names.length > 0 ? ` (${names.join(', ')})` : ''}`,
    );
  }
}

function checkCompression(path: string, incompatible: bigint, compressionType: number): void {
  const flagged = (incompatible & QCOW2_INCOMPAT_COMPRESSION) !== 0n;
  if (compressionType === QCOW2_COMPRESSION_TYPE_ZLIB && flagged)
    throw corrupt(path, 'compression type bit set with the default (deflate) compression type');
  if (compressionType !== QCOW2_COMPRESSION_TYPE_ZLIB && !flagged)
    throw corrupt(path, `compression type ${compressionType} without the compression type feature bit`);
  if (compressionType !== QCOW2_COMPRESSION_TYPE_ZLIB && compressionType !== QCOW2_COMPRESSION_TYPE_ZSTD) {
    throw unsupported(path, `unknown qcow2 compression type ${compressionType}`);
  }
}

function readBackingName(head: Buffer, offset: number, length: number, clusterSize: number, path: string): string | undefined {
  if (offset === 0) return undefined;
  if (length === 0 || length > 1023 || offset + length > clusterSize || offset + length > head.length) {
    throw corrupt(path, `backing file name (${length} bytes at ${offset}) does not fit in the first cluster`);
  }
  return head.toString('utf8', offset, offset + length);
}

function checkTables(h: Qcow2Header, fileSize: number, path: string): void {
  const l2Entries = h.clusterSize / (h.extendedL2 ? 16 : 8);
  const minL1 = Math.ceil(h.sizeBytes / (h.clusterSize * l2Entries));
  if (h.l1Size < minL1) throw corrupt(path, `L1 table has ${h.l1Size} entries; a ${h.sizeBytes}-byte disk needs ${minL1}`);
  if (h.l1Size * 8 > QCOW_MAX_L1_SIZE_BYTES) throw corrupt(path, `L1 table of ${h.l1Size} entries is larger than 32 MiB`);
  if (h.l1Size > 0 && (!aligned(h.l1TableOffset, h.clusterSize) || h.l1TableOffset === 0 || h.l1TableOffset + h.l1Size * 8 > fileSize)) {
    throw corrupt(path, `L1 table (${h.l1Size} entries at ${h.l1TableOffset}) is misaligned or lies past the end of the file`);
  }
  if (h.refcountTableClusters === 0 || h.refcountTableClusters * h.clusterSize > QCOW_MAX_REFTABLE_SIZE_BYTES) {
    throw corrupt(path, `refcount table of ${h.refcountTableClusters} clusters is empty or larger than 8 MiB`);
  }
  if (h.refcountTableOffset === 0 || !aligned(h.refcountTableOffset, h.clusterSize) || h.refcountTableOffset >= fileSize) {
    throw corrupt(path, `refcount table at ${h.refcountTableOffset} is misaligned or lies past the end of the file`);
  }
  if (h.nbSnapshots > QCOW_MAX_SNAPSHOTS) throw corrupt(path, `${h.nbSnapshots} internal snapshots (qemu allows at most 65536)`);
  if (h.nbSnapshots > 0 && (!aligned(h.snapshotsOffset, h.clusterSize) || h.snapshotsOffset === 0 || h.snapshotsOffset >= fileSize)) {
    throw corrupt(path, `snapshot table at ${h.snapshotsOffset} is misaligned or lies past the end of the file`);
  }
}
