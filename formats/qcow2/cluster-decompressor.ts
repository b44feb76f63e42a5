// Decompresses one compressed cluster into exactly `clusterSize` bytes. Type 0 ("zlib") is raw
// deflate (RFC 1951, no zlib header): qemu deflates with 12 window bits but inflates a whole
// cluster in one call, so 15-bit streams are valid too and Node's default window reads both.
// Type 1 is zstd (fzstd, after zstd-frames.ts trims the sector padding). Output is bounded to
// one cluster whatever the input claims; fewer bytes than a cluster is damage. Deflate runs on
// libuv's thread pool (zlib's async API), so several clusters inflate in parallel off the main
// thread; fzstd is JavaScript and runs inline.

import { promisify } from 'node:util';
import { constants as zlibConstants, inflateRaw } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { SbmError, isSbmError } from '../../lib/errors.js';
import { QCOW2_COMPRESSION_TYPE_ZSTD } from './constants.js';
import { zstdFrames } from './zstd-frames.js';

const inflateRawAsync = promisify(inflateRaw);

export async function decompressCluster(input: Buffer, clusterSize: number, compressionType: number, where: string): Promise<Buffer> {
  try {
    const out =
      compressionType === QCOW2_COMPRESSION_TYPE_ZSTD ? inflateZstd(input, clusterSize) : await inflateDeflate(input, clusterSize);
    if (out.length < clusterSize)
      throw new SbmError('SBM_CORRUPT', `${where}: compressed cluster decodes to ${out.length} of ${clusterSize} bytes`);
    return out.length === clusterSize ? out : out.subarray(0, clusterSize);
  } catch (error) {
    if (isSbmError(error)) throw new SbmError('SBM_CORRUPT', `${where}: ${error.message.replace(/^SBM_[A-Z_]+: /, '')}`, { where });
    const reason = error instanceof Error ? error.message : String(error);
    throw new SbmError('SBM_CORRUPT', `${where}: compressed cluster does not decode (${reason})`, { where });
  }
}

function inflateDeflate(input: Buffer, clusterSize: number): Promise<Buffer> {
  // Z_SYNC_FLUSH: a stream that fills the cluster without its end marker is accepted, as qemu does.
  // maxOutputLength bounds memory; a stream longer than a cluster fails there (damage). One
  // chunk of a cluster's size: the output never needs a second buffer.
  return inflateRawAsync(input, {
    finishFlush: zlibConstants.Z_SYNC_FLUSH,
    maxOutputLength: clusterSize,
    chunkSize: Math.max(clusterSize, 1024),
  });
}

function inflateZstd(input: Buffer, clusterSize: number): Buffer {
  const out = Buffer.alloc(clusterSize);
  let filled = 0;
  for (const frame of zstdFrames(input, clusterSize)) {
    const decoded = zstdDecompress(input.subarray(frame.start, frame.end));
    const take = Math.min(decoded.length, clusterSize - filled);
    out.set(decoded.subarray(0, take), filled);
    filled += take;
    if (filled === clusterSize) break;
  }
  return out.subarray(0, filled);
}
