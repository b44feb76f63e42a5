// CRC-32 pieces combined out of order (UDIF blkx checksums are checked this way): crc32Combine and
// crc32OfZeros against zlib's crc32 of the concatenated bytes.

import test from 'ava';
import fc from 'fast-check';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32Bulk, crc32Combine, crc32OfZeros } from '../../lib/checksums.js';

test('crc32Combine(crc(A), crc(B), |B|) is crc(A || B)', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 3000 }), (a, b) => {
      const whole = Buffer.concat([a, b]);
      return crc32Combine(crc32Bulk(a), crc32Bulk(b), b.length) === zlibCrc32(whole) >>> 0;
    }),
  );
  t.pass();
});

test('crc32OfZeros(n) is the CRC-32 of n zero bytes, large n included', (t) => {
  for (const length of [0, 1, 2, 3, 511, 512, 4096, 65_537, 1_048_576, 5_000_011])
    t.is(crc32OfZeros(length), zlibCrc32(Buffer.alloc(length)) >>> 0, `n=${length}`);
});

test('crc32Bulk continues from a previous value as zlib does', (t) => {
  const data = Buffer.from('The quick brown fox jumps over the lazy dog');
  t.is(crc32Bulk(data), 0x414fa339);
  t.is(crc32Bulk(data.subarray(10), crc32Bulk(data.subarray(0, 10))), 0x414fa339);
});
