// Every VDI variant qemu-img writes (dynamic, static, a size ending inside a block), with data
// written by qemu-io (patterns, zero writes, holes), converted by `sbm convert` and exported back
// to raw: equal byte for byte to `qemu-img convert -O raw`. A block whose map entry is set to
// 0xFFFFFFFE (discarded/zero) reads as zeros in both.
// Needs `npm run build` first (runs dist/cli/sbm.js).

import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { MiB, header, qemuRaw, qemuVdi } from './vdi-kit.js';

const WRITES = ['write -P 0xab 1M 64k', 'write -P 0x11 3M 2M', 'write -z 6M 64k', 'write -P 0x5c 5M 512', 'write -P 0x7e 1023k 2k'];

const VARIANTS = [
  { name: 'dynamic', size: '8M', options: [], subformat: 'dynamic' },
  { name: 'static', size: '8M', options: ['static=on'], subformat: 'fixed' },
  { name: 'dynamic, 7500k (last block partial)', size: '7500k', options: [], subformat: 'dynamic' },
] as const;

for (const variant of VARIANTS) {
  test(`${variant.name}: sbm convert equals qemu-img convert -O raw byte for byte`, async (t) => {
    await requireTool(t, 'qemu-img');
    await requireTool(t, 'qemu-io');
    const dir = await tempDir(t);
    const disk = join(dir, 'disk.vdi');
    await qemuVdi(disk, variant.size, [...variant.options], WRITES);
    const want = await qemuRaw(disk, join(dir, 'reference.raw'));
    const bundle = join(dir, 'disk.sparsebundle');
    const convert = await runSbm(['convert', disk, bundle, '--json', '--no-progress']);
    t.is(convert.exitCode, 0, convert.stderr);
    t.is(JSON.parse(convert.stdout).format, 'vdi');
    const back = join(dir, 'back.raw');
    const exported = await runSbm(['export', bundle, back, '--format', 'raw']);
    t.is(exported.exitCode, 0, exported.stderr);
    const got = await readFile(back);
    t.is(got.length, want.length);
    t.true(got.equals(want), 'bytes equal qemu-img convert -O raw');
    const info = JSON.parse((await runSbm(['info', disk, '--json'])).stdout);
    t.is(info.subformat, variant.subformat);
    t.is(info.blockSize, MiB);
    t.is(info.sizeBytes, want.length);
  });
}

test('a zero (0xFFFFFFFE) entry reads as zeros like qemu, and extents say data/zero/hole', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.vdi');
  await qemuVdi(disk, '4M', [], ['write -P 0x01 0 4k', 'write -P 0x02 1M 4k']);
  const file = await readFile(disk);
  file.writeUInt32LE(0xfffffffe, header(file).offBlocks + 4);
  await writeFile(disk, file);
  const want = await qemuRaw(disk, join(dir, 'reference.raw'));
  const image = await openImage(disk);
  try {
    const got = await image.read(0, image.sizeBytes);
    t.true(got.equals(want));
    t.true(got.subarray(MiB, 2 * MiB).every((byte) => byte === 0));
    t.deepEqual(await image.extents(0, image.sizeBytes), [
      { offset: 0, length: MiB, kind: 'data' },
      { offset: MiB, length: MiB, kind: 'zero' },
      { offset: 2 * MiB, length: 2 * MiB, kind: 'hole' },
    ]);
  } finally {
    await image.close();
  }
});

test('a 1 TiB dynamic image with one block maps as three runs (runs of free blocks merge)', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'big.vdi');
  await qemuVdi(disk, '1T', [], ['write -P 0x07 500G 4k']);
  const image = await openImage(disk);
  try {
    const extents = await image.extents(0, image.sizeBytes);
    t.deepEqual(extents, [
      { offset: 0, length: 500 * 1024 * MiB, kind: 'hole' },
      { offset: 500 * 1024 * MiB, length: MiB, kind: 'data' },
      { offset: 500 * 1024 * MiB + MiB, length: image.sizeBytes - 500 * 1024 * MiB - MiB, kind: 'hole' },
    ]);
  } finally {
    await image.close();
  }
});

test('an empty image (qemu-img create ... 0) reads as a 0-byte disk, as qemu-img info says', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'empty.vdi');
  await qemuVdi(disk, '0', []);
  const image = await openImage(disk);
  try {
    t.is(image.sizeBytes, 0);
    t.deepEqual(await image.extents(0, 0), []);
  } finally {
    await image.close();
  }
});
