// Finds where the zstd frames of one compressed cluster end, without decoding them. qemu's
// descriptor rounds the stream up to whole 512-byte sectors, so the bytes read hold the frame
// plus the start of the next cluster's stream; the decoder (fzstd) rejects such trailing bytes,
// and a hostile frame header could ask it for a 2 GiB window. So the frames are walked first:
//
//   frame: magic 0xFD2FB528 (LE), FHD byte, [window byte], [dictionary id], [content size],
//          blocks (3-byte LE header: last = h & 1, type = (h >> 1) & 3, size = h >>> 3;
//          RLE blocks carry 1 byte, type 3 is invalid) until `last`, [4-byte checksum if FHD & 4]
//   skippable frame: magic 0x184D2A5?, u32 LE length, payload
//
// Each frame's output is bounded from its block sizes (compressed blocks at most 128 KiB or the
// window), and frames are taken only until they can cover one cluster.

import { SbmError } from '../../lib/errors.js';
import { ZSTD_FRAME_MAGIC, ZSTD_MAX_BLOCK_BYTES, ZSTD_SKIPPABLE_MAGIC, ZSTD_SKIPPABLE_MAGIC_MASK } from './constants.js';

const DICTIONARY_ID_BYTES = [0, 1, 2, 4] as const;
const CONTENT_SIZE_BYTES = [0, 2, 4, 8] as const;
/** A window larger than this is not something qemu wrote for one cluster (qemu's own limit is 128 MiB). */
const MAX_WINDOW_BYTES = 8 * 1024 * 1024;

export interface ZstdFrame {
  readonly start: number;
  readonly end: number;
  /** Largest output the frame can produce. */
  readonly maxOutput: number;
}

function invalid(why: string): SbmError {
  return new SbmError('SBM_CORRUPT', `zstd data ${why}`);
}

/** The frames of `data` needed to produce `clusterSize` bytes (fewer if the data ends first). */
export function zstdFrames(data: Uint8Array, clusterSize: number): ZstdFrame[] {
  const frames: ZstdFrame[] = [];
  let position = 0;
  let covered = 0;
  while (covered < clusterSize && position + 4 <= data.length) {
    const magic = readLe(data, position, 4);
    if ((magic & ZSTD_SKIPPABLE_MAGIC_MASK) >>> 0 === ZSTD_SKIPPABLE_MAGIC) {
      if (position + 8 > data.length) throw invalid('ends inside a skippable frame header');
      position += 8 + readLe(data, position + 4, 4);
      continue;
    }
    if (magic !== ZSTD_FRAME_MAGIC) {
      if (frames.length === 0) throw invalid('does not start with a zstd frame');
      break;
    }
    const frame = walkFrame(data, position, clusterSize);
    frames.push(frame);
    covered += frame.maxOutput;
    position = frame.end;
  }
  if (frames.length === 0) throw invalid('holds no zstd frame');
  return frames;
}

function walkFrame(data: Uint8Array, start: number, clusterSize: number): ZstdFrame {
  const fhd = byteAt(data, start + 4);
  const singleSegment = (fhd & 0x20) !== 0;
  if ((fhd & 0x08) !== 0) throw invalid('sets a reserved frame header bit');
  let position = start + 5;
  let window = 0;
  if (!singleSegment) {
    const descriptor = byteAt(data, position);
    const base = 2 ** (10 + (descriptor >> 3));
    window = base + (base / 8) * (descriptor & 7);
    position++;
  }
  position += DICTIONARY_ID_BYTES[fhd & 3] ?? 0;
  const sizeBytes = (fhd >> 6 === 0 ? (singleSegment ? 1 : 0) : CONTENT_SIZE_BYTES[fhd >> 6]) ?? 0;
  let contentSize = -1;
  if (sizeBytes > 0) {
    contentSize =
      sizeBytes === 8 ? readLe(data, position, 4) + readLe(data, position + 4, 4) * 0x1_0000_0000 : readLe(data, position, sizeBytes);
    if (sizeBytes === 2) contentSize += 256;
    position += sizeBytes;
  }
  if (singleSegment) window = contentSize;
  if (contentSize > clusterSize) throw invalid(`declares ${contentSize} bytes, more than a ${clusterSize}-byte cluster`);
  if (window > MAX_WINDOW_BYTES) throw invalid(`asks for a ${window}-byte window`);
  const blockBound = Math.min(ZSTD_MAX_BLOCK_BYTES, Math.max(window, 1));
  let maxOutput = 0;
  for (;;) {
    if (position + 3 > data.length) throw invalid('ends inside a block header');
    const header = readLe(data, position, 3);
    const last = (header & 1) !== 0;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw invalid('holds a reserved block type');
    if (size > ZSTD_MAX_BLOCK_BYTES) throw invalid(`holds a ${size}-byte block`);
    position += 3 + (type === 1 ? 1 : size);
    maxOutput += type === 2 ? blockBound : size;
    if (position > data.length) throw invalid('ends inside a block');
    if (maxOutput > 2 * clusterSize + ZSTD_MAX_BLOCK_BYTES) throw invalid(`frame would produce more than a ${clusterSize}-byte cluster`);
    if (last) break;
  }
  if ((fhd & 0x04) !== 0) position += 4;
  if (position > data.length) throw invalid('ends inside a frame checksum');
  return { start, end: position, maxOutput: contentSize >= 0 ? Math.min(contentSize, maxOutput) : maxOutput };
}

function byteAt(data: Uint8Array, at: number): number {
  const value = data[at];
  if (value === undefined) throw invalid('ends inside a frame header');
  return value;
}

function readLe(data: Uint8Array, at: number, width: number): number {
  let value = 0;
  for (let index = width - 1; index >= 0; index--) value = value * 256 + byteAt(data, at + index);
  return value;
}
