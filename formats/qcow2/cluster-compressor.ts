// Compresses one guest cluster for a qcow2 written with --compress: raw deflate (no zlib header)
// with qemu's 12-bit window, so qemu, which inflates with a 12-bit window, reads every stream.
// Runs on libuv's thread pool (zlib's async API), so several clusters compress at once. A cluster
// is stored compressed only when that saves space: qemu's own rule is a stream shorter than
// cluster_size - 1 bytes.

import { promisify } from 'node:util';
import { deflateRaw } from 'node:zlib';
import { QCOW2_DEFLATE_WINDOW_BITS } from './constants.js';

const deflateRawAsync = promisify(deflateRaw);

/** The deflated cluster, or undefined when compressing would not make it smaller. */
export async function compressCluster(data: Buffer, clusterSize: number): Promise<Buffer | undefined> {
  const stream = await deflateRawAsync(data, { windowBits: QCOW2_DEFLATE_WINDOW_BITS, memLevel: 9 });
  return stream.length < clusterSize - 1 ? stream : undefined;
}
