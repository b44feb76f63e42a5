// Writes a streamOptimized VMDK in the VDF5 layout VMware's own tools produce (footer variant):
//
//   header (gdOffset = GD_AT_END) | descriptor | pad to sector 128 |
//   per 32 MiB window: grain markers (lba, size, zlib data, padded to a sector) ...,
//                      GT marker + GT (only windows that hold data; others keep GDE 0) |
//   GD marker + GD | footer marker + footer (header copy with the real gdOffset) | EOS marker
//
// Grains are deflated on the libuv threadpool (async zlib, level 1), several at a time, and
// written in LBA order.

import type { FileHandle } from 'node:fs/promises';
import { deflate } from 'node:zlib';
import type { BlockDevice } from '../../lib/block-device.js';
import type { CopyOptions } from '../../lib/copy-device.js';
import { writeFully } from '../../lib/fs/read-fully.js';
import {
  GRAIN_MARKER_EOS,
  GRAIN_MARKER_FOOTER,
  GRAIN_MARKER_GRAIN_DIRECTORY,
  GRAIN_MARKER_GRAIN_TABLE,
  SECTOR_SIZE,
  SPARSEFLAG_COMPRESSED,
  SPARSEFLAG_EMBEDDED_LBA,
  SPARSEFLAG_VALID_NEWLINE_DETECTOR,
  SPARSE_GD_AT_END,
  VMDK_COMPRESSION_DEFLATE,
} from './constants.js';
import { type GrainWalkStats, dataGrainWindows } from './grain-source.js';
import { GRAIN_MARKER, METADATA_MARKER, type SparseExtentHeader, encodeSparseHeader } from './sparse-header.js';
import {
  WRITE_GRAIN_BYTES,
  WRITE_GRAIN_SECTORS,
  WRITE_GT_ENTRIES,
  WRITE_GT_SECTORS,
  baseHeader,
  descriptorArea,
  writeGeometry,
} from './vmdk-writer-common.js';
import { mapLimit } from '../../lib/map-limit.js';

const DEFLATES_IN_FLIGHT = 4;
const FIRST_GRAIN_SECTOR = 128;

function deflateAsync(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    deflate(data, { level: 1 }, (error, result) => (error === null ? resolve(result) : reject(error))),
  );
}

function metadataMarker(type: number, numSectors: number): Buffer {
  return METADATA_MARKER.encode({ numSectors: BigInt(numSectors), size: 0, type });
}

function padToSector(length: number): number {
  return Math.ceil(length / SECTOR_SIZE) * SECTOR_SIZE;
}

export async function writeStreamOptimized(
  source: BlockDevice,
  handle: FileHandle,
  path: string,
  fileName: string,
  copy: CopyOptions | undefined,
  stats: GrainWalkStats,
): Promise<number> {
  const { capacitySectors, gdSectors } = writeGeometry(source.sizeBytes, path);
  const header: SparseExtentHeader = {
    ...baseHeader(capacitySectors),
    version: 3,
    flags: SPARSEFLAG_VALID_NEWLINE_DETECTOR | SPARSEFLAG_COMPRESSED | SPARSEFLAG_EMBEDDED_LBA,
    gdOffset: SPARSE_GD_AT_END,
    overHead: BigInt(FIRST_GRAIN_SECTOR),
    compressAlgorithm: VMDK_COMPRESSION_DEFLATE,
  };
  await writeFully(handle, encodeSparseHeader(header), 0);
  await writeFully(handle, descriptorArea('streamOptimized', fileName, capacitySectors), SECTOR_SIZE);
  let position = FIRST_GRAIN_SECTOR * SECTOR_SIZE;
  let bytesWritten = 0;
  const gd = Buffer.alloc(gdSectors * SECTOR_SIZE);
  for await (const window of dataGrainWindows(source, WRITE_GRAIN_BYTES, WRITE_GT_ENTRIES, copy, stats)) {
    if (window.grains.length === 0) continue;
    const compressed: Buffer[] = new Array<Buffer>(window.grains.length);
    await mapLimit(
      window.grains.map((grain, index) => ({ grain, index })),
      DEFLATES_IN_FLIGHT,
      async ({ grain, index }) => {
        compressed[index] = await deflateAsync(grain.data);
      },
    );
    const gt = Buffer.alloc(WRITE_GT_SECTORS * SECTOR_SIZE);
    const pieces: Buffer[] = [];
    let pieceBytes = 0;
    const windowStart = position;
    window.grains.forEach((grain, index) => {
      const data = compressed[index] ?? Buffer.alloc(0);
      const record = Buffer.alloc(padToSector(GRAIN_MARKER.sizeBytes + data.length));
      GRAIN_MARKER.encode({ lba: BigInt(grain.grainIndex * WRITE_GRAIN_SECTORS), size: data.length }, record);
      data.copy(record, GRAIN_MARKER.sizeBytes);
      gt.writeUInt32LE((windowStart + pieceBytes) / SECTOR_SIZE, (grain.grainIndex - window.gtIndex * WRITE_GT_ENTRIES) * 4);
      pieces.push(record);
      pieceBytes += record.length;
    });
    pieces.push(metadataMarker(GRAIN_MARKER_GRAIN_TABLE, WRITE_GT_SECTORS));
    gd.writeUInt32LE((windowStart + pieceBytes + SECTOR_SIZE) / SECTOR_SIZE, window.gtIndex * 4);
    pieces.push(gt);
    const chunk = Buffer.concat(pieces);
    await writeFully(handle, chunk, position);
    position += chunk.length;
    bytesWritten += chunk.length;
  }
  const gdOffset = position / SECTOR_SIZE + 1;
  const footer = encodeSparseHeader({ ...header, gdOffset: BigInt(gdOffset) });
  const tail = Buffer.concat([
    metadataMarker(GRAIN_MARKER_GRAIN_DIRECTORY, gdSectors),
    gd,
    metadataMarker(GRAIN_MARKER_FOOTER, 1),
    footer,
    metadataMarker(GRAIN_MARKER_EOS, 0),
  ]);
  await writeFully(handle, tail, position);
  return bytesWritten + tail.length;
}
