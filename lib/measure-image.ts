// How many bytes a convert or export of a disk would need, like `qemu-img measure`: `required`
// for this disk's data and `fullyAllocated` for a disk of its size with every byte written.
// Data is what extents() reports as `data` (holes and known-zero runs are never stored); a data
// run that is all zeros on read is still counted, so `required` is an upper bound, as qemu's is.
//
//   raw           the file is the disk: both numbers are the virtual size (qemu's answer too)
//   qcow2         qemu's own formula for a 64 KiB-cluster, 16-bit-refcount image
//   sparsebundle  each band file ends after its last data byte; plus Info.plist and Info.bckup
//   vmdk          the caller's metadata size (formats/ knows the writer's layout) + data grains

import type { BlockDevice, Extent } from './block-device.js';

export type MeasureTarget = 'raw' | 'qcow2' | 'sparsebundle' | 'vmdk';
export const MEASURE_TARGETS: readonly MeasureTarget[] = ['raw', 'qcow2', 'sparsebundle', 'vmdk'];

export interface Measurement {
  readonly target: MeasureTarget;
  readonly requiredBytes: number;
  readonly fullyAllocatedBytes: number;
}

const QCOW2_CLUSTER_BYTES = 64 * 1024;
const QCOW2_REFCOUNT_ORDER = 4;
/** Two copies of an hdiutil-layout Info.plist (about 500 bytes each), counted as one 4 KiB block each. */
const BUNDLE_METADATA_BYTES = 2 * 4096;

/** Every data extent of the device, asked for in bounded steps. */
export async function dataExtents(device: BlockDevice): Promise<Extent[]> {
  const step = 1024 * 1024 * 1024;
  const list: Extent[] = [];
  for (let offset = 0; offset < device.sizeBytes; offset += step) {
    for (const extent of await device.extents(offset, Math.min(step, device.sizeBytes - offset))) {
      if (extent.kind === 'data') list.push(extent);
    }
  }
  return list;
}

/** Number of `unitBytes`-aligned units that hold at least one data byte. */
export function unitsTouched(data: readonly Extent[], unitBytes: number): number {
  let count = 0;
  let lastUnit = -1;
  for (const extent of data) {
    const first = Math.max(Math.floor(extent.offset / unitBytes), lastUnit + 1);
    const last = Math.floor((extent.offset + extent.length - 1) / unitBytes);
    if (last >= first) count += last - first + 1;
    lastUnit = Math.max(lastUnit, last);
  }
  return count;
}

export function measureRaw(sizeBytes: number): Measurement {
  return { target: 'raw', requiredBytes: sizeBytes, fullyAllocatedBytes: sizeBytes };
}

export function measureQcow2(sizeBytes: number, data: readonly Extent[]): Measurement {
  // qemu rounds the size up to a whole cluster before both numbers.
  const virtualBytes = Math.ceil(sizeBytes / QCOW2_CLUSTER_BYTES) * QCOW2_CLUSTER_BYTES;
  const fullyAllocatedBytes = qcow2PreallocBytes(virtualBytes);
  const dataBytes = unitsTouched(data, QCOW2_CLUSTER_BYTES) * QCOW2_CLUSTER_BYTES;
  return { target: 'qcow2', requiredBytes: fullyAllocatedBytes - virtualBytes + dataBytes, fullyAllocatedBytes };
}

export function measureSparseBundle(sizeBytes: number, bandSizeBytes: number, data: readonly Extent[]): Measurement {
  const bandEnds = new Map<number, number>();
  for (const extent of data) {
    for (let offset = extent.offset; offset < extent.offset + extent.length; ) {
      const band = Math.floor(offset / bandSizeBytes);
      const end = Math.min(extent.offset + extent.length, (band + 1) * bandSizeBytes);
      bandEnds.set(band, end - band * bandSizeBytes);
      offset = end;
    }
  }
  let requiredBytes = BUNDLE_METADATA_BYTES;
  for (const end of bandEnds.values()) requiredBytes += end;
  return { target: 'sparsebundle', requiredBytes, fullyAllocatedBytes: BUNDLE_METADATA_BYTES + sizeBytes };
}

export function measureVmdk(sizeBytes: number, metadataBytes: number, grainBytes: number, data: readonly Extent[]): Measurement {
  const requiredBytes = metadataBytes + unitsTouched(data, grainBytes) * grainBytes;
  return { target: 'vmdk', requiredBytes, fullyAllocatedBytes: metadataBytes + Math.ceil(sizeBytes / grainBytes) * grainBytes };
}

/** qemu's qcow2_calc_prealloc_size: header, L2 and L1 tables, refcount metadata, then the data. */
function qcow2PreallocBytes(virtualBytes: number): number {
  const cluster = QCOW2_CLUSTER_BYTES;
  const alignedBytes = Math.ceil(virtualBytes / cluster) * cluster;
  let metaBytes = cluster;
  const l2Entries = roundUp(alignedBytes / cluster, cluster / 8);
  metaBytes += l2Entries * 8;
  const l1Entries = roundUp((l2Entries * 8) / cluster, cluster / 8);
  metaBytes += l1Entries * 8;
  metaBytes += qcow2RefcountBytes((metaBytes + alignedBytes) / cluster);
  return metaBytes + alignedBytes;
}

/** qemu's qcow2_refcount_metadata_size: the fixed point where refcounts cover themselves too. */
function qcow2RefcountBytes(clusters: number): number {
  const perTableCluster = QCOW2_CLUSTER_BYTES / 8;
  const perBlock = (QCOW2_CLUSTER_BYTES * 8) / (1 << QCOW2_REFCOUNT_ORDER);
  let table = 0;
  let blocks = 0;
  let total = 0;
  let last: number;
  do {
    last = total;
    blocks = Math.ceil((clusters + table + blocks) / perBlock);
    table = Math.ceil(blocks / perTableCluster);
    total = clusters + blocks + table;
  } while (total !== last);
  return (blocks + table) * QCOW2_CLUSTER_BYTES;
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}
