// LZMA (ULMO, UDIF chunk type 0x80000008) chunks hold an xz container (what liblzma's
// lzma_easy_encoder writes), decoded by @napi-rs/lzma. That decoder takes no output limit, so the
// xz index is read first: each stream's footer and index give its blocks' uncompressed sizes, and
// a chunk whose index does not add up to exactly the chunk's size is refused before decoding (a
// small chunk can then never expand to more than the chunk it claims to be).

import { defineLayout } from '../../lib/binary-layout.js';
import { SbmError } from '../../lib/errors.js';

const XZ_FOOTER = defineLayout('xz stream footer', 12, 'le', [
  { name: 'crc', offset: 0, type: 'u32' },
  { name: 'backwardSize', offset: 4, type: 'u32' },
  { name: 'flags', offset: 8, type: 'u16' },
  { name: 'magic', offset: 10, type: 'bytes', size: 2, equals: 'YZ' },
] as const);

const XZ_HEADER_BYTES = 12;

function corrupt(where: string, path: string, what: string): SbmError {
  return new SbmError('SBM_CORRUPT', `${where}: LZMA chunk ${what}`, { path });
}

/** Reads a multibyte integer of the xz index (7 bits a byte, at most 9 bytes). */
function varint(data: Uint8Array, at: { pos: number }, limit: number): number {
  let value = 0;
  for (let shift = 0; shift < 63; shift += 7) {
    if (at.pos >= limit) return Number.NaN;
    const byte = data[at.pos++] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return value;
  }
  return Number.NaN;
}

/** The total uncompressed size the xz index records, walking streams from the end; NaN if malformed. */
export function xzUncompressedSize(data: Uint8Array): number {
  let end = data.length;
  let total = 0;
  while (end > 0) {
    while (end >= 4 && data[end - 1] === 0 && data[end - 2] === 0 && data[end - 3] === 0 && data[end - 4] === 0) end -= 4;
    if (end < XZ_HEADER_BYTES + XZ_FOOTER.sizeBytes || !XZ_FOOTER.matches(data, end - 12)) return Number.NaN;
    const footer = XZ_FOOTER.decode(data, end - 12);
    const indexSize = (footer.backwardSize + 1) * 4;
    const indexStart = end - 12 - indexSize;
    if (indexStart < XZ_HEADER_BYTES || data[indexStart] !== 0) return Number.NaN;
    const at = { pos: indexStart + 1 };
    const limit = end - 12 - 4;
    const records = varint(data, at, limit);
    let blocks = 0;
    for (let i = 0; i < records && Number.isFinite(blocks); i++) {
      const unpadded = varint(data, at, limit);
      total += varint(data, at, limit);
      blocks += Math.ceil(unpadded / 4) * 4;
    }
    if (!Number.isSafeInteger(total) || !Number.isSafeInteger(blocks)) return Number.NaN;
    end = indexStart - blocks - XZ_HEADER_BYTES;
    if (end < 0) return Number.NaN;
  }
  return total;
}

/** Decodes an xz chunk into exactly `length` bytes; anything else is SBM_CORRUPT naming `where`. */
export async function decodeXzChunk(packed: Uint8Array, length: number, where: string, path: string): Promise<Buffer> {
  const declared = xzUncompressedSize(packed);
  if (Number.isNaN(declared)) throw corrupt(where, path, 'is not a well-formed xz stream');
  if (declared !== length) throw corrupt(where, path, `declares ${declared} bytes, expected ${length}`);
  // Loaded on first use: a native addon that only LZMA chunks need.
  let xz: typeof import('@napi-rs/lzma').xz;
  try {
    ({ xz } = await import('@napi-rs/lzma'));
  } catch (error) {
    const reason = String(error instanceof Error ? error.message : error).split('\n')[0];
    throw new SbmError('SBM_UNSUPPORTED', `${path}: LZMA chunks need @napi-rs/lzma, which does not load here (${reason})`, { path });
  }
  let out: Buffer;
  try {
    out = xz.decompressSync(packed);
  } catch (error) {
    const reason = String(error instanceof Error ? error.message : error).split('\n')[0];
    throw corrupt(where, path, `does not decompress (${reason})`);
  }
  if (out.length !== length) throw corrupt(where, path, `decompresses to ${out.length} bytes, expected ${length}`);
  return out;
}
