import test from 'ava';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyBandHashing, hashFile, linkBands, readBandHashing, writeNewBand } from '../../../lib/backup/band-files.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

test('a band is copied with its hash, held whole or streamed in chunks above the limit', async (t) => {
  const dir = await tempDir(t);
  const data = seededBytes(3 * 1024 * 1024 + 5, 7);
  await writeFile(join(dir, 'band'), data);
  const whole = await copyBandHashing(join(dir, 'band'), join(dir, 'whole'));
  const streamed = await copyBandHashing(join(dir, 'band'), join(dir, 'streamed'), { wholeMaxBytes: 1024 * 1024 });
  for (const [record, name] of [
    [whole, 'whole'],
    [streamed, 'streamed'],
  ] as const) {
    t.deepEqual(record, { record: { size: data.length, sha256: sha(data) }, bytesWritten: data.length }, name);
    t.true((await readFile(join(dir, name))).equals(data), name);
  }
  t.deepEqual(await hashFile(join(dir, 'band')), whole.record);
  await t.throwsAsync(copyBandHashing(join(dir, 'band'), join(dir, 'whole')), { code: 'EEXIST' }, 'never over an existing file');
});

test('copies leave all-zero 64 KiB blocks as holes and read back equal, held whole or streamed', async (t) => {
  const dir = await tempDir(t);
  const MIB = 1024 * 1024;
  // 4 MiB + 100 bytes: data, 2 MiB of zeros, data, a zero tail that is not a whole block.
  const data = Buffer.alloc(4 * MIB + 100);
  seededBytes(MIB, 5).copy(data, 0);
  seededBytes(MIB - 4096, 6).copy(data, 3 * MIB);
  await writeFile(join(dir, 'band'), data);
  const whole = await copyBandHashing(join(dir, 'band'), join(dir, 'whole'));
  const streamed = await copyBandHashing(join(dir, 'band'), join(dir, 'streamed'), { wholeMaxBytes: MIB });
  for (const [record, name] of [
    [whole, 'whole'],
    [streamed, 'streamed'],
  ] as const) {
    t.deepEqual(record.record, { size: data.length, sha256: sha(data) }, name);
    t.is(record.bytesWritten, 2 * MIB, name);
    t.true((await readFile(join(dir, name))).equals(data), name);
    const allocated = (await stat(join(dir, name))).blocks * 512;
    t.true(allocated <= 2 * MIB + 64 * 1024, `${name}: ${allocated} bytes allocated for 2 MiB of data`);
  }
});

test('readBandHashing holds small bands whole and declines big ones; writeNewBand writes what it hashed', async (t) => {
  const dir = await tempDir(t);
  const data = seededBytes(100_000, 3);
  await writeFile(join(dir, 'band'), data);
  const read = await readBandHashing(join(dir, 'band'));
  t.deepEqual(read?.record, { size: data.length, sha256: sha(data) });
  t.is(await readBandHashing(join(dir, 'band'), 99_999), undefined);
  t.deepEqual((await writeNewBand(join(dir, 'copy'), read?.data ?? Buffer.alloc(0))).record, read?.record);
  t.true((await readFile(join(dir, 'copy'))).equals(data));
});

test('linkBands links (same inode) or, in copy mode, makes independent copies', async (t) => {
  const dir = await tempDir(t);
  const pairs: Array<readonly [string, string]> = [];
  for (let index = 0; index < 70; index++) {
    await writeFile(join(dir, `s${index}`), seededBytes(1000, index + 1));
    pairs.push([join(dir, `s${index}`), join(dir, `l${index}`)]);
  }
  let done = 0;
  await linkBands(pairs, false, () => done++);
  t.is(done, 70);
  for (const [from, to] of pairs) t.is((await stat(to)).ino, (await stat(from)).ino);
  const copies = pairs.map(([from], index) => [from, join(dir, `c${index}`)] as const);
  await linkBands(copies, true, () => done++);
  t.is(done, 140);
  for (const [from, to] of copies) {
    t.not((await stat(to)).ino, (await stat(from)).ino);
    t.true((await readFile(to)).equals(await readFile(from)));
  }
  await t.throwsAsync(
    linkBands([pairs[0] ?? ['', '']], false, () => undefined),
    { code: 'EEXIST' },
  );
});
