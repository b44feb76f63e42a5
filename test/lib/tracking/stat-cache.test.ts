import test from 'ava';
import { join } from 'node:path';
import { open, readFile, writeFile } from 'node:fs/promises';
import {
  STAT_CACHE_FLAG_LOG_TRUSTED,
  STAT_CACHE_FLAG_PRESENT_COUNT,
  STAT_CACHE_HEADER_SIZE,
  STAT_SLOT_SIZE,
} from '../../../lib/tracking/constants.js';
import { STAT_CACHE_HEADER, StatCache } from '../../../lib/tracking/stat-cache.js';
import { crc32 as checksum } from '../../../lib/checksums.js';
import { tempDir } from '../../helpers/tools.js';

const stamp = (ino: number) => ({ ino, size: 4096, mtimeUs: 1_700_000_000_000_000 + ino, ctimeUs: 1_700_000_000_000_000 + ino });

async function newCache(t: Parameters<typeof tempDir>[0]) {
  const path = join(await tempDir(t), 'stat-cache');
  const cache = await StatCache.create(path, 0x1234);
  await cache.save(
    new Map([
      [0, stamp(10)],
      [5, stamp(15)],
      [9, stamp(19)],
    ]),
    stamp(1),
    1,
    { logTrusted: undefined, logBandsAtLeast: 0 },
  );
  await cache.close();
  return path;
}

test("the header table is 64 bytes and the JS CRC-32 equals zlib's", async (t) => {
  t.is(STAT_CACHE_HEADER.sizeBytes, STAT_CACHE_HEADER_SIZE);
  const { crc32 } = await import('node:zlib');
  const bytes = Buffer.from(Array.from({ length: 300 }, (_, index) => (index * 37) & 0xff));
  for (const [from, to] of [
    [0, 0],
    [0, 1],
    [3, 47],
    [0, 300],
  ] as const)
    t.is(checksum(bytes, from, to), crc32(bytes.subarray(from, to)) >>> 0);
});

test('slots read one by one match slots read from the whole file; the present count follows saves', async (t) => {
  const path = await newCache(t);
  const cache = await StatCache.load(path, 0x1234, true);
  if (cache === undefined) throw new Error('cache did not load');
  t.teardown(() => cache.close());
  t.deepEqual(cache.slot(5), { state: 'present', statGeneration: 1, stamp: stamp(15) });
  t.is(cache.slot(3).state, 'unknown');
  t.is(cache.slot(1000).state, 'unknown');
  t.is(cache.presentCount(), 3);
  await cache.save(
    new Map([
      [5, undefined],
      [12, stamp(22)],
      [13, stamp(23)],
    ]),
    stamp(1),
    2,
    { logTrusted: { bytes: 64, crc: 7 }, logBandsAtLeast: 4 },
  );
  t.is(cache.presentCount(), 4, '3 - band 5 + bands 12, 13');
  t.deepEqual(cache.presentBands(), [0, 9, 12, 13]); // reads the whole file
  t.deepEqual(cache.slot(5), { state: 'absent', statGeneration: 2 });
  const reloaded = await StatCache.load(path, 0x1234, false);
  t.teardown(() => reloaded?.close());
  t.deepEqual(reloaded?.logTrusted, { bytes: 64, crc: 7 });
  t.is(reloaded?.logBandsAtLeast, 4);
  t.is(reloaded?.presentCount(), 4);
  t.deepEqual(reloaded?.slot(12), cache.slot(12));
});

test('a header from before the count was kept counts present slots by reading them', async (t) => {
  const path = await newCache(t);
  const bytes = await readFile(path);
  bytes.writeUInt16LE(0, 14); // flags as older sbm wrote them: nothing known
  bytes.writeUInt32LE(0, 56);
  bytes.writeUInt32LE(checksum(bytes, 8, STAT_CACHE_HEADER_SIZE), 4);
  await writeFile(path, bytes);
  const cache = await StatCache.load(path, 0x1234, false);
  t.teardown(() => cache?.close());
  t.is(cache?.logTrusted, undefined);
  t.is(cache?.presentCount(), 3);
});

test.serial('a save of bands without new records clears the trusted flag durably before writing their slots', async (t) => {
  const path = await newCache(t);
  const cache = await StatCache.load(path, 0x1234, true);
  if (cache === undefined) throw new Error('cache did not load');
  t.teardown(() => cache.close());
  const probe = await open(path, 'r');
  const prototype = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<unknown>; datasync: () => Promise<void> };
  await probe.close();
  const { write, datasync } = prototype;
  const steps: string[] = [];
  prototype.write = function (this: unknown, ...args: unknown[]) {
    const [data, , , position] = args as [Buffer, number, number, number];
    if (position === 0) steps.push(`header flags=${STAT_CACHE_HEADER.decode(data).flags}`);
    else steps.push(`slot ${(position - STAT_CACHE_HEADER_SIZE) / STAT_SLOT_SIZE}`);
    return write.apply(this, args);
  };
  prototype.datasync = function (this: unknown) {
    steps.push('datasync');
    return datasync.call(this);
  };
  t.teardown(() => {
    prototype.write = write;
    prototype.datasync = datasync;
  });
  const trusted = STAT_CACHE_FLAG_LOG_TRUSTED | STAT_CACHE_FLAG_PRESENT_COUNT;
  await cache.save(new Map([[9, stamp(99)]]), stamp(1), 3, { logTrusted: { bytes: 96, crc: 1 }, logBandsAtLeast: 3, distrustFirst: true });
  await cache.save(new Map([[0, stamp(98)]]), stamp(1), 4, { logTrusted: { bytes: 96, crc: 1 }, logBandsAtLeast: 3 });
  prototype.write = write;
  prototype.datasync = datasync;
  t.deepEqual(steps, [
    `header flags=${STAT_CACHE_FLAG_PRESENT_COUNT}`,
    'datasync',
    'slot 9',
    'datasync',
    `header flags=${trusted}`,
    'datasync',
    // a plain save: slots and header, one fdatasync
    'slot 0',
    `header flags=${trusted}`,
    'datasync',
  ]);
});

test('earlier sbm can still read the header: its two reserved u64 stay below 2^53', async (t) => {
  const path = await newCache(t);
  const cache = await StatCache.load(path, 0x1234, true);
  if (cache === undefined) throw new Error('cache did not load');
  await cache.save(new Map([[1, stamp(11)]]), stamp(1), 2, {
    logTrusted: { bytes: 0xffffffe0, crc: 0xffffffff },
    logBandsAtLeast: 2 ** 31,
  });
  await cache.close();
  const bytes = await readFile(path);
  for (const offset of [48, 56]) t.true(bytes.readBigUInt64LE(offset) <= BigInt(Number.MAX_SAFE_INTEGER), `u64 at ${offset}`);
  const reloaded = await StatCache.load(path, 0x1234, false);
  t.teardown(() => reloaded?.close());
  t.deepEqual(reloaded?.logTrusted, { bytes: 0xffffffe0, crc: 0xffffffff });
  t.is(reloaded?.logBandsAtLeast, 0x1fffff, 'a lower bound may be lowered');
  t.is(reloaded?.presentCount(), 4);
});
