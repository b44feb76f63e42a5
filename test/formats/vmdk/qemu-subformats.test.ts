// Every VMDK subformat qemu-img can write, read back through sbm and compared with qemu-img.

import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { openVmdk as openImage } from '../../../formats/vmdk/open-vmdk.js';
import { requireTool, seededBytes, tempDir } from '../../helpers/tools.js';
import { MiB, compareAllBytes, kindAt, makeSourceRaw, qemuCompare, qemuImg, sbmToRaw, vmdkinfo } from './vmdk-test-kit.js';

// 40963 sectors: not a grain multiple (qemu writes such capacities; the last grain is short).
const SMALL = 40963 * 512;
const SMALL_RUNS = [
  { offset: 0, length: 64 * 1024, seed: 1 },
  { offset: 3 * MiB + 4096, length: 700 * 1024, seed: 2 },
  { offset: 9 * MiB, length: 3 * MiB, seed: 3 },
  { offset: SMALL - 1536, length: 1536, seed: 4 },
];

async function roundTrip(t: ExecutionContext, subformat: string, expectedExtents: number): Promise<void> {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'vmdkinfo');
  const dir = await tempDir(t);
  const source = join(dir, 'source.raw');
  const disk = join(dir, 'disk.vmdk');
  await makeSourceRaw(source, SMALL, SMALL_RUNS);
  await qemuImg(['convert', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${subformat}`, source, disk]);
  const reference = join(dir, 'reference.raw');
  await qemuImg(['convert', '-f', 'vmdk', '-O', 'raw', disk, reference]);
  const image = await openImage(disk);
  t.teardown(() => image.close());
  t.is(image.formatName, 'vmdk');
  await compareAllBytes(t, image, reference);
  t.is(await kindAt(image, 0), 'data');
  t.is(await kindAt(image, 6 * MiB), 'hole', 'an unwritten grain is a hole');
  t.is(await kindAt(image, 10 * MiB), 'data');
  const out = join(dir, 'sbm.raw');
  await sbmToRaw(image, out);
  await qemuCompare(t, out, 'raw', disk, 'vmdk');
  const details = await image.details();
  t.is(details.createType, subformat);
  t.is(details.capacity, SMALL);
  t.is((details.extents as unknown[]).length, expectedExtents);
  if (subformat !== 'monolithicFlat') {
    const info = await vmdkinfo(disk);
    t.is(info.mediaSize, details.capacity as number);
    t.is(info.extentCount, expectedExtents);
  }
}

test('monolithicSparse', (t) => roundTrip(t, 'monolithicSparse', 1));
test('streamOptimized (qemu layout: tables in front)', (t) => roundTrip(t, 'streamOptimized', 1));
test('monolithicFlat', (t) => roundTrip(t, 'monolithicFlat', 1));
test('twoGbMaxExtentSparse (single extent)', (t) => roundTrip(t, 'twoGbMaxExtentSparse', 1));
test('twoGbMaxExtentFlat (single extent)', (t) => roundTrip(t, 'twoGbMaxExtentFlat', 1));

async function splitRoundTrip(t: ExecutionContext, subformat: string, extentFile: string): Promise<void> {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'vmdkinfo');
  const dir = await tempDir(t);
  const source = join(dir, 'source.raw');
  const disk = join(dir, 'disk.vmdk');
  const size = 4096 * MiB + 5 * MiB;
  const runs = [
    { offset: MiB, length: MiB, seed: 11 },
    { offset: 2048 * MiB - 300 * 1024, length: 600 * 1024, seed: 12 }, // across the extent boundary
    { offset: size - 2 * MiB, length: 2 * MiB, seed: 13 },
  ];
  await makeSourceRaw(source, size, runs);
  await qemuImg(['convert', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${subformat}`, source, disk]);
  const image = await openImage(join(dir, extentFile));
  t.teardown(() => image.close());
  t.is(image.sizeBytes, size);
  const details = await image.details();
  t.is((details.extents as unknown[]).length, 3);
  const boundary = await image.read(2048 * MiB - 300 * 1024, 600 * 1024);
  t.true(boundary.equals(seededBytes(600 * 1024, 12)), 'data across the extent boundary');
  t.is(await kindAt(image, 1024 * MiB), 'hole');
  const out = join(dir, 'sbm.raw');
  await sbmToRaw(image, out);
  await qemuCompare(t, out, 'raw', disk, 'vmdk');
  const info = await vmdkinfo(disk);
  t.is(info.mediaSize, size);
  t.is(info.extentCount, 3);
}

test('twoGbMaxExtentSparse with 3 extents, opened by naming an extent file', (t) =>
  splitRoundTrip(t, 'twoGbMaxExtentSparse', 'disk-s002.vmdk'));
test('twoGbMaxExtentFlat with 3 extents, opened by naming an extent file', (t) =>
  splitRoundTrip(t, 'twoGbMaxExtentFlat', 'disk-f003.vmdk'));

test('a 1 TiB disk with preallocated grain tables maps without reading them again', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const disk = join(dir, 'big.vmdk');
  await qemuImg(['create', '-q', '-f', 'vmdk', disk, '1T']);
  const { execa } = await import('execa');
  await execa('qemu-io', ['-f', 'vmdk', '-c', 'write -P 0x5 700G 1M', disk]);
  const image = await openImage(disk);
  t.teardown(() => image.close());
  const GiB = 1024 * MiB;
  t.deepEqual(await image.extents(0, image.sizeBytes), [
    { offset: 0, length: 700 * GiB, kind: 'hole' },
    { offset: 700 * GiB, length: MiB, kind: 'data' },
    { offset: 700 * GiB + MiB, length: 324 * GiB - MiB, kind: 'hole' },
  ]);
  t.true((await image.read(700 * GiB, MiB)).equals(Buffer.alloc(MiB, 5)));
});
