// Walks one range of a BlockDevice cluster by cluster and yields, in batches of at most 8 MiB,
// only the clusters that hold non-zero data: the source's extents() skip holes and known-zero
// runs without reading them, and data runs are read and scanned so all-zero clusters stay
// unallocated too. Memory stays at one batch whatever the disk size.

import { type BlockDevice, isAllZero } from '../../lib/block-device.js';

export interface DataCluster {
  /** Guest cluster number. */
  readonly clusterIndex: number;
  /** Exactly one cluster; the last cluster of a disk that ends mid-cluster is zero-padded. */
  readonly data: Buffer;
}

const MAX_READ_BYTES = 8 * 1024 * 1024;

export interface ClusterWalkStats {
  bytesRead: number;
}

/** Batches of data clusters of [start, end), in guest order; `start` is cluster-aligned. */
export async function* dataClusterBatches(
  source: BlockDevice,
  start: number,
  end: number,
  clusterSize: number,
  stats: ClusterWalkStats,
): AsyncGenerator<DataCluster[]> {
  const wanted = await clustersWithData(source, start, end, clusterSize);
  const perRead = Math.max(1, Math.floor(MAX_READ_BYTES / clusterSize));
  let index = 0;
  while (index < wanted.length) {
    const first = wanted[index] ?? 0;
    let count = 1;
    while (index + count < wanted.length && wanted[index + count] === first + count && count < perRead) count++;
    const readStart = first * clusterSize;
    const readLength = Math.min(source.sizeBytes, readStart + count * clusterSize) - readStart;
    const data = await source.read(readStart, readLength);
    stats.bytesRead += readLength;
    const batch: DataCluster[] = [];
    for (let k = 0; k < count; k++) {
      const cluster = data.subarray(k * clusterSize, Math.min(readLength, (k + 1) * clusterSize));
      if (isAllZero(cluster)) continue;
      batch.push({ clusterIndex: first + k, data: cluster.length === clusterSize ? cluster : padded(cluster, clusterSize) });
    }
    if (batch.length > 0) yield batch;
    index += count;
  }
}

/** Cluster numbers that data extents touch, in order, each once. */
async function clustersWithData(source: BlockDevice, start: number, end: number, clusterSize: number): Promise<number[]> {
  const wanted: number[] = [];
  for (const extent of await source.extents(start, end - start)) {
    if (extent.kind !== 'data') continue;
    const first = Math.floor(extent.offset / clusterSize);
    const last = Math.floor((extent.offset + extent.length - 1) / clusterSize);
    for (let cluster = first; cluster <= last; cluster++) if (wanted[wanted.length - 1] !== cluster) wanted.push(cluster);
  }
  return wanted;
}

function padded(cluster: Buffer, clusterSize: number): Buffer {
  const out = Buffer.alloc(clusterSize);
  cluster.copy(out);
  return out;
}
