import test from 'ava';
import fc from 'fast-check';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { defineLayout, toSafeInteger } from '../../lib/binary-layout.js';
import { crc32, crc32c } from '../../lib/checksums.js';
import { isSbmError } from '../../lib/errors.js';

const HEADER = defineLayout('test header', 24, 'be', [
  { name: 'magic', offset: 0, type: 'bytes', size: 4, equals: 'TEST' },
  { name: 'version', offset: 4, type: 'u16' },
  { name: 'flags', offset: 6, type: 'u8' },
  { name: 'pad', offset: 7, type: 'bytes', size: 1 },
  { name: 'sizeBytes', offset: 8, type: 'u64n' },
  { name: 'offset', offset: 16, type: 'u64' },
] as const);

test('decode reads what encode wrote, big-endian, with the magic checked', (t) => {
  const bytes = HEADER.encode({
    magic: Buffer.from('TEST'),
    version: 0x0102,
    flags: 7,
    sizeBytes: 2 ** 40 + 3,
    offset: 0xfedcba9876543210n,
  });
  t.is(bytes.toString('hex'), `${Buffer.from('TEST').toString('hex')}010207000000010000000003fedcba9876543210`);
  const values = HEADER.decode(bytes);
  t.is(values.version, 0x0102);
  t.is(values.flags, 7);
  t.is(values.sizeBytes, 2 ** 40 + 3);
  t.is(values.offset, 0xfedcba9876543210n);
  t.true(HEADER.matches(bytes));
  t.is(HEADER.reader('sizeBytes')(bytes, 0), 2 ** 40 + 3);
  t.is(HEADER.offsetOf('offset'), 16);
});

test('hostile input: truncation, a wrong magic and a u64n past 2^53 are SBM_CORRUPT naming the file', (t) => {
  const good = HEADER.encode({ magic: Buffer.from('TEST'), version: 1, flags: 0, sizeBytes: 1, offset: 0n });
  const short = t.throws(() => HEADER.decode(good.subarray(0, 23), 0, '/x/disk.img'));
  t.true(isSbmError(short, 'SBM_CORRUPT'));
  t.regex(short?.message ?? '', /^SBM_CORRUPT: \/x\/disk\.img: test header is truncated \(23 of 24 bytes\)/);
  const wrongMagic = Buffer.from(good);
  wrongMagic.write('TEXT', 0, 'latin1');
  t.false(HEADER.matches(wrongMagic));
  t.regex(t.throws(() => HEADER.decode(wrongMagic))?.message ?? '', /not a test header \(magic is not "TEST"\)/);
  const huge = Buffer.from(good);
  huge.writeUInt32BE(0x200000, 8);
  t.true(
    isSbmError(
      t.throws(() => HEADER.decode(huge)),
      'SBM_CORRUPT',
    ),
  );
  t.true(
    isSbmError(
      t.throws(() => toSafeInteger(2n ** 60n, 'capacity', 'disk.img')),
      'SBM_CORRUPT',
    ),
  );
});

test('a table with a gap, an overlap or a wrong total size is refused at declaration', (t) => {
  t.throws(() =>
    defineLayout('gap', 8, 'le', [
      { name: 'a', offset: 0, type: 'u32' },
      { name: 'b', offset: 5, type: 'u16' },
    ] as const),
  );
  t.throws(() =>
    defineLayout('overlap', 6, 'le', [
      { name: 'a', offset: 0, type: 'u32' },
      { name: 'b', offset: 2, type: 'u32' },
    ] as const),
  );
  t.throws(() => defineLayout('size', 10, 'le', [{ name: 'a', offset: 0, type: 'u64' }] as const));
  t.throws(() => defineLayout('width', 4, 'le', [{ name: 'a', offset: 0, type: 'u32', size: 2 }] as const));
});

test('little-endian round trip for any values (property)', (t) => {
  const layout = defineLayout('le record', 15, 'le', [
    { name: 'a', offset: 0, type: 'u8' },
    { name: 'b', offset: 1, type: 'u16' },
    { name: 'c', offset: 3, type: 'u32' },
    { name: 'd', offset: 7, type: 'u64n' },
  ] as const);
  fc.assert(
    fc.property(fc.nat(255), fc.nat(0xffff), fc.nat(0xffffffff), fc.nat({ max: Number.MAX_SAFE_INTEGER }), (a, b, c, d) => {
      const values = layout.decode(layout.encode({ a, b, c, d }));
      return values.a === a && values.b === b && values.c === c && values.d === d;
    }),
  );
  t.pass();
});

test('crc32 equals zlib; crc32c matches the Castagnoli check value', (t) => {
  const check = Buffer.from('123456789');
  t.is(crc32c(check), 0xe3069283);
  t.is(crc32(check), 0xcbf43926);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => crc32(bytes) === zlibCrc32(bytes)));
});

test('writer stores one field in place; encode refuses a u64n that is not a safe non-negative integer', (t) => {
  const record = defineLayout('checked record', 16, 'le', [
    { name: 'crc', offset: 0, type: 'u32' },
    { name: 'kind', offset: 4, type: 'u32' },
    { name: 'count', offset: 8, type: 'u64n' },
  ] as const);
  const bytes = record.encode({ crc: 0, kind: 2, count: 2 ** 52 + 1 });
  t.is(bytes.readBigUInt64LE(8), 2n ** 52n + 1n);
  const writeCrc = record.writer('crc');
  writeCrc(bytes, 0, crc32(bytes, record.offsetOf('kind'), 16));
  t.is(bytes.readUInt32LE(0), zlibCrc32(bytes.subarray(4, 16)) >>> 0);
  t.is(record.reader('count')(bytes, 0), 2 ** 52 + 1);
  for (const count of [-1, 2 ** 53, 1.5])
    t.true(
      isSbmError(
        t.throws(() => record.encode({ crc: 0, kind: 0, count })),
        'SBM_INTERNAL',
      ),
      String(count),
    );
  const big = defineLayout('be u64n', 8, 'be', [{ name: 'value', offset: 0, type: 'u64n' }] as const);
  t.is(big.encode({ value: 0x1234_5678_9abc }).toString('hex'), '000012345678' + '9abc');
  t.throws(() => record.writer('missing' as 'crc'));
});
