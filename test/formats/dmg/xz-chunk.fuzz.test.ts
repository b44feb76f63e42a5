// Hostile LZMA (xz) chunks: the index walk never throws or loops on any bytes, and a damaged or
// truncated real xz stream decodes to exactly the chunk's size or fails with a one-line
// SBM_CORRUPT. (hdiutil's xz streams carry no check of their own, so a flipped byte can decode to
// other bytes of the right size: the blkx checksum catches those, see dmg-real.test.ts.)

import test from 'ava';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { SbmError } from '../../../lib/errors.js';
import { decodeXzChunk, xzUncompressedSize } from '../../../formats/dmg/xz-chunk.js';
import { sampleDisk } from './dmg-kit.js';

const DATA = sampleDisk(64, 3);
const PACKED = execFileSync('xz', ['--format=xz', '--check=none', '-c'], { input: DATA });

test('the index walk reads a real stream and survives any bytes', (t) => {
  t.is(xzUncompressedSize(PACKED), DATA.length);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const size = xzUncompressedSize(bytes);
      return Number.isNaN(size) || (Number.isSafeInteger(size) && size >= 0);
    }),
  );
});

test('damaged or cut xz chunks decode to the chunk size or fail with one-line SBM_CORRUPT', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: PACKED.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      fc.boolean(),
      async (at, flip, cut) => {
        const bytes = Buffer.from(PACKED);
        const input = cut ? bytes.subarray(0, at) : bytes;
        if (!cut) bytes[at] = (bytes[at] as number) ^ flip;
        try {
          const out = await decodeXzChunk(input, DATA.length, 'chunk', 'image.dmg');
          return out.length === DATA.length && (!cut || out.equals(DATA));
        } catch (error) {
          return error instanceof SbmError && error.code === 'SBM_CORRUPT' && !error.message.includes('\n');
        }
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});
