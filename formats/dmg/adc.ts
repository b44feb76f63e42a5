// Apple Data Compression (ADC, UDIF chunk type 0x80000004): an LZ77 variant with three codes.
//
//   1xxxxxxx                 literal: the next (x + 1) bytes
//   01llllll oooooooo oooooooo  copy (l + 4) bytes from (o + 1) bytes back
//   0lllloo  oooooooo        copy (l + 3) bytes from (o + 1) bytes back
//
// The output size is known (the chunk's sector count), so the decoder writes into a fixed buffer
// and refuses any code that reads before the start or writes past the end.

import { SbmError } from '../../lib/errors.js';

function corrupt(where: string, what: string): SbmError {
  return new SbmError('SBM_CORRUPT', `${where}: ADC chunk ${what}`, { path: where });
}

/** Decodes `input` into exactly `out.length` bytes (a short result is SBM_CORRUPT). */
export function decodeAdc(input: Uint8Array, out: Buffer, where: string): void {
  let inPos = 0;
  let outPos = 0;
  while (inPos < input.length && outPos < out.length) {
    const code = input[inPos] as number;
    if (code & 0x80) {
      const length = (code & 0x7f) + 1;
      if (inPos + 1 + length > input.length || outPos + length > out.length) throw corrupt(where, 'literal runs past its end');
      out.set(input.subarray(inPos + 1, inPos + 1 + length), outPos);
      inPos += 1 + length;
      outPos += length;
      continue;
    }
    let length: number;
    let distance: number;
    if (code & 0x40) {
      if (inPos + 3 > input.length) throw corrupt(where, 'ends inside a copy code');
      length = (code & 0x3f) + 4;
      distance = (((input[inPos + 1] as number) << 8) | (input[inPos + 2] as number)) + 1;
      inPos += 3;
    } else {
      if (inPos + 2 > input.length) throw corrupt(where, 'ends inside a copy code');
      length = ((code >> 2) & 0x0f) + 3;
      distance = (((code & 0x03) << 8) | (input[inPos + 1] as number)) + 1;
      inPos += 2;
    }
    if (distance > outPos || outPos + length > out.length) throw corrupt(where, 'copy reaches outside the output');
    // Byte by byte: a copy may overlap its own output (a run).
    for (let i = 0; i < length; i++) out[outPos + i] = out[outPos + i - distance] as number;
    outPos += length;
  }
  if (outPos !== out.length) throw corrupt(where, `decodes to ${outPos} bytes, expected ${out.length}`);
}
