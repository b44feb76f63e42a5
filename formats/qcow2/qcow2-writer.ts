// Writes any BlockDevice as a qcow2 version 3 image (64 KiB clusters, 16-bit refcounts), one L2
// table's coverage (512 MiB of guest) at a time:
//
//   for each L1 slot: data clusters of the slot (compressed streams packed, then plain clusters),
//                     then its L2 table, only if the slot maps anything
//   then: refcount table and the last refcount blocks (host-writer.ts)
//   last: the L1 table (cluster 1..) and the header (cluster 0), which make the image valid
//
// Holes, known-zero runs and all-zero clusters stay unallocated (L2 entry 0: with no backing file
// they read as zeros). With `compress`, clusters are deflated (cluster-compressor.ts) and stored
// compressed where that saves space. Memory: the L1 table (at most qemu's 32 MiB limit, 160 KiB
// for a 10 TiB disk), one L2 table, one batch of at most 8 MiB of data and its compressed copy.

import type { FileHandle } from 'node:fs/promises';
import type { BlockDevice } from '../../lib/block-device.js';
import type { CopyOptions } from '../../lib/copy-device.js';
import { fromSystemError } from '../../lib/errors.js';
import { writeFully } from '../../lib/fs/read-fully.js';
import { mapLimit } from '../../lib/map-limit.js';
import { compressCluster } from './cluster-compressor.js';
import { QCOW2_COMPRESSED_SECTOR_SIZE, QCOW_OFLAG_COMPRESSED, QCOW_OFLAG_COPIED } from './constants.js';
import { type ClusterWalkStats, type DataCluster, dataClusterBatches } from './data-clusters.js';
import { HostWriter } from './host-writer.js';
import { type WriteGeometry, encodeHeaderCluster, writeGeometry } from './write-geometry.js';
import { QCOW2_TABLE_ENTRY } from './write-layouts.js';

const writeEntry = QCOW2_TABLE_ENTRY.writer('value');
const COMPRESSIONS_IN_FLIGHT = 4;

export interface Qcow2WriteOptions {
  readonly compress?: boolean;
  readonly copy?: CopyOptions;
  /** Tests only: smaller clusters put many L2 tables and refcount blocks in a small file (default 16). */
  readonly clusterBits?: number;
}

export interface Qcow2WriteResult {
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

export async function writeQcow2(
  source: BlockDevice,
  handle: FileHandle,
  path: string,
  options: Qcow2WriteOptions,
): Promise<Qcow2WriteResult> {
  const geometry = writeGeometry(source.sizeBytes, path, options.clusterBits);
  const host = new HostWriter(handle, path, geometry.clusterSize, 1 + geometry.l1Clusters);
  const l1 = Buffer.alloc(geometry.l1Clusters * geometry.clusterSize);
  const stats: ClusterWalkStats = { bytesRead: 0 };
  for (let l1Index = 0; l1Index < geometry.l1Size; l1Index++) {
    options.copy?.checkAborted?.();
    const l2Offset = await writeL2Slot(source, host, geometry, l1Index, options, stats);
    if (l2Offset !== undefined) writeEntry(l1, l1Index * QCOW2_TABLE_ENTRY.sizeBytes, BigInt(l2Offset) | QCOW_OFLAG_COPIED);
    const bytesDone = Math.min(source.sizeBytes, (l1Index + 1) * geometry.l2CoverageBytes);
    options.copy?.onProgress?.({ bytesDone, bytesTotal: source.sizeBytes });
  }
  const reftable = await host.finish();
  const header = encodeHeaderCluster(geometry, reftable.offset, reftable.clusters);
  try {
    if (l1.length > 0) await writeFully(handle, l1, geometry.l1TableOffset);
    await writeFully(handle, header, 0);
  } catch (error) {
    throw fromSystemError(error, 'cannot write qcow2', path);
  }
  return { bytesRead: stats.bytesRead, bytesWritten: host.bytesWritten + l1.length + header.length };
}

/** Writes the data of one L1 slot and its L2 table; returns the table's host offset, or undefined if the slot maps nothing. */
async function writeL2Slot(
  source: BlockDevice,
  host: HostWriter,
  geometry: WriteGeometry,
  l1Index: number,
  options: Qcow2WriteOptions,
  stats: ClusterWalkStats,
): Promise<number | undefined> {
  const start = l1Index * geometry.l2CoverageBytes;
  const end = Math.min(source.sizeBytes, start + geometry.l2CoverageBytes);
  const firstCluster = l1Index * geometry.l2Entries;
  const l2 = Buffer.alloc(geometry.clusterSize);
  let mapped = false;
  for await (const batch of dataClusterBatches(source, start, end, geometry.clusterSize, stats)) {
    options.copy?.checkAborted?.();
    const streams = options.compress === true ? await compressBatch(batch, geometry.clusterSize) : [];
    const plain: DataCluster[] = [];
    // Compressed streams first, right after the previous ones; then the plain clusters, so a
    // batch pads to a cluster boundary at most once.
    batch.forEach((cluster, index) => {
      const stream = streams[index];
      if (stream === undefined) {
        plain.push(cluster);
        return;
      }
      const entry = compressedDescriptor(host.appendCompressed(stream), stream.length, geometry.clusterBits);
      writeEntry(l2, (cluster.clusterIndex - firstCluster) * QCOW2_TABLE_ENTRY.sizeBytes, entry);
    });
    for (const cluster of plain) {
      const offset = host.appendClusters(cluster.data);
      writeEntry(l2, (cluster.clusterIndex - firstCluster) * QCOW2_TABLE_ENTRY.sizeBytes, BigInt(offset) | QCOW_OFLAG_COPIED);
    }
    mapped = true;
    await host.flush();
    const lastCluster = (batch[batch.length - 1] as DataCluster).clusterIndex;
    options.copy?.onProgress?.({
      bytesDone: Math.min(source.sizeBytes, (lastCluster + 1) * geometry.clusterSize),
      bytesTotal: source.sizeBytes,
    });
  }
  if (!mapped) return undefined;
  const offset = host.appendClusters(l2);
  await host.flush();
  return offset;
}

/** Each cluster's deflate stream, or undefined where it would not save space. */
async function compressBatch(batch: readonly DataCluster[], clusterSize: number): Promise<Array<Buffer | undefined>> {
  const streams = new Array<Buffer | undefined>(batch.length);
  await mapLimit(batch.keys(), COMPRESSIONS_IN_FLIGHT, async (index) => {
    streams[index] = await compressCluster((batch[index] as DataCluster).data, clusterSize);
  });
  return streams;
}

/**
 * A compressed L2 entry (qcow2-cluster.c): bit 62, the host byte offset in bits 0..x-1 and, in
 * bits x..61, the 512-byte sectors the stream uses past the one holding its first byte, with
 * x = 70 - cluster_bits. Bit 63 stays clear: compressed clusters are never "copied".
 */
export function compressedDescriptor(hostOffset: number, length: number, clusterBits: number): bigint {
  const shift = BigInt(70 - clusterBits);
  const sector = QCOW2_COMPRESSED_SECTOR_SIZE;
  const extraSectors = Math.floor((hostOffset + length - 1) / sector) - Math.floor(hostOffset / sector);
  return QCOW_OFLAG_COMPRESSED | (BigInt(extraSectors) << shift) | BigInt(hostOffset);
}
