// Every VHD variant qemu-img writes (dynamic, fixed, each with and without force_size), with data
// written by qemu-io (patterns, zero writes, holes, the partial last block), converted by
// `sbm convert` and exported back to raw: equal byte for byte to `qemu-img convert -O raw`, and
// the same virtual size as `qemu-img info`. Then the size rule per creator application, on
// footers patched the way Hyper-V, Virtual PC, qemu and unknown tools write them.
// Needs `npm run build` first (runs dist/cli/sbm.js).

import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { VHD_FOOTER } from '../../../formats/vhd/layouts.js';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { MiB, editFooters, fixFooterChecksum, qemuImg, qemuRaw, qemuVhd, qemuVirtualSize } from './vhd-kit.js';

// Data across a 2 MiB block boundary, a zero write, an untouched block (6-8 MiB), and a sector
// in the partial last block (the CHS-rounded size ends past 10 MiB).
const WRITES = ['write -P 0xab 1M 64k', 'write -P 0x11 3M 2M', 'write -z 5M 64k', 'write -P 0x5c 10000k 512', 'write -P 0x7e 2047k 2k'];

const VARIANTS = [
  { name: 'dynamic', options: ['subformat=dynamic'], subformat: 'dynamic', creator: 'qemu', sizeFrom: 'chs' },
  {
    name: 'dynamic, force_size',
    options: ['subformat=dynamic', 'force_size=on'],
    subformat: 'dynamic',
    creator: 'qem2',
    sizeFrom: 'current_size',
  },
  { name: 'fixed', options: ['subformat=fixed'], subformat: 'fixed', creator: 'qemu', sizeFrom: 'chs' },
  {
    name: 'fixed, force_size',
    options: ['subformat=fixed', 'force_size=on'],
    subformat: 'fixed',
    creator: 'qem2',
    sizeFrom: 'current_size',
  },
] as const;

for (const variant of VARIANTS) {
  test(`${variant.name}: sbm convert equals qemu-img convert -O raw byte for byte, size as qemu-img info`, async (t) => {
    await requireTool(t, 'qemu-img');
    await requireTool(t, 'qemu-io');
    const dir = await tempDir(t);
    const disk = join(dir, 'disk.vhd');
    await qemuVhd(disk, '10M', [...variant.options], WRITES);
    const want = await qemuRaw(disk, join(dir, 'reference.raw'));
    const bundle = join(dir, 'disk.sparsebundle');
    const convert = await runSbm(['convert', disk, bundle, '--json', '--no-progress']);
    t.is(convert.exitCode, 0, convert.stderr);
    t.is(JSON.parse(convert.stdout).format, 'vhd');
    const back = join(dir, 'back.raw');
    const exported = await runSbm(['export', bundle, back, '--format', 'raw']);
    t.is(exported.exitCode, 0, exported.stderr);
    const got = await readFile(back);
    t.is(got.length, want.length);
    t.true(got.equals(want), 'bytes equal qemu-img convert -O raw');
    const info = await runSbm(['info', disk, '--json']);
    t.is(info.exitCode, 0, info.stderr);
    const facts = JSON.parse(info.stdout);
    t.is(facts.sizeBytes, await qemuVirtualSize(disk));
    t.is(facts.subformat, variant.subformat);
    t.is(facts.creatorApplication, variant.creator);
    t.is(facts.sizeFrom, variant.sizeFrom);
    t.deepEqual(facts.warnings ?? [], []);
  });
}

test('extents: a dynamic disk reports its absent blocks as holes and its blocks as data', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.vhd');
  await qemuVhd(disk, '8M', [], ['write -P 0x01 2M 4k']);
  const image = await openImage(disk);
  try {
    t.deepEqual(await image.extents(0, image.sizeBytes), [
      { offset: 0, length: 2 * MiB, kind: 'hole' },
      { offset: 2 * MiB, length: 2 * MiB, kind: 'data' },
      { offset: 4 * MiB, length: image.sizeBytes - 4 * MiB, kind: 'hole' },
    ]);
  } finally {
    await image.close();
  }
});

test('extents: a fixed disk reports the holes of its (sparse) file, so convert stays sparse', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'fixed.vhd');
  await qemuVhd(disk, '8M', ['subformat=fixed'], ['write -P 0x01 2M 64k']);
  const image = await openImage(disk);
  try {
    const extents = await image.extents(0, image.sizeBytes);
    t.true(
      extents.some((extent) => extent.kind === 'hole'),
      JSON.stringify(extents),
    );
    const data = extents.filter((extent) => extent.kind === 'data');
    // The written 64 KiB is data; the rest is mostly holes (the file system may allocate a page near the footer).
    t.true(
      data.some((extent) => extent.offset <= 2 * MiB && extent.offset + extent.length >= 2 * MiB + 64 * 1024),
      JSON.stringify(extents),
    );
    t.true(data.reduce((sum, extent) => sum + extent.length, 0) < MiB, JSON.stringify(extents));
    t.is(
      extents.reduce((sum, extent) => sum + extent.length, 0),
      image.sizeBytes,
    );
  } finally {
    await image.close();
  }
});

test('a 2000 GiB dynamic disk with one block maps as three runs (runs of absent blocks merge)', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'big.vhd');
  await qemuVhd(disk, '2000G', [], ['write -P 0x07 1000G 4k']);
  const image = await openImage(disk);
  try {
    const extents = await image.extents(0, image.sizeBytes);
    t.deepEqual(
      extents.map((extent) => extent.kind),
      ['hole', 'data', 'hole'],
    );
    t.true((await image.read(1000 * 1024 * MiB, 4096)).every((byte) => byte === 0x07));
  } finally {
    await image.close();
  }
});

// current_size is set to 12 MiB (the table of a 10 MiB qemu disk covers 6 x 2 MiB), unlike the
// CHS size 302/4/17 = 10 514 432: the creator decides which one qemu 7.2 takes.
const CREATORS = [
  { creator: 'win ', why: 'Hyper-V: current_size', chs: undefined, size: 12 * MiB },
  { creator: 'd2v ', why: 'Disk2VHD: current_size', chs: undefined, size: 12 * MiB },
  { creator: 'vpc ', why: 'Virtual PC: CHS', chs: undefined, size: 10514432 },
  { creator: 'qemu', why: 'qemu: CHS', chs: undefined, size: 10514432 },
  { creator: 'wa\0\0', why: 'Azure (unknown to qemu 7.2): CHS', chs: undefined, size: 10514432 },
  { creator: 'vpc ', why: 'Virtual PC with the maximal geometry: current_size', chs: [65535, 16, 255], size: 12 * MiB },
] as const;

for (const { creator, why, chs, size } of CREATORS) {
  test(`creator ${JSON.stringify(creator)} (${why}): the size qemu-img info reports, and the same bytes`, async (t) => {
    await requireTool(t, 'qemu-img');
    const dir = await tempDir(t);
    const disk = join(dir, 'disk.vhd');
    await qemuVhd(disk, '10M', [], ['write -P 0x42 0 4k', 'write -P 0x43 9M 1M']);
    const file = await readFile(disk);
    editFooters(file, (footer) => {
      footer.write(creator, VHD_FOOTER.offsetOf('creatorApplication'), 'latin1');
      footer.writeBigUInt64BE(BigInt(12 * MiB), VHD_FOOTER.offsetOf('currentSize'));
      if (chs !== undefined) {
        footer.writeUInt16BE(chs[0], VHD_FOOTER.offsetOf('cylinders'));
        footer.writeUInt8(chs[1], VHD_FOOTER.offsetOf('heads'));
        footer.writeUInt8(chs[2], VHD_FOOTER.offsetOf('sectorsPerTrack'));
      }
    });
    await writeFile(disk, file);
    t.is(await qemuVirtualSize(disk), size, 'qemu agrees with the expectation');
    const want = await qemuRaw(disk, join(dir, 'reference.raw'));
    const image = await openImage(disk);
    try {
      t.is(image.sizeBytes, size);
      t.true((await image.read(0, image.sizeBytes)).equals(want));
    } finally {
      await image.close();
    }
  });
}

test('a footer checksum qemu-img accepts is the one sbm computes (fixing it changes nothing)', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.vhd');
  await qemuVhd(disk, '4M', ['subformat=fixed']);
  const file = await readFile(disk);
  const before = Buffer.from(file);
  fixFooterChecksum(file, file.length - 512);
  t.true(file.equals(before));
  t.regex(await qemuImg(['info', '-f', 'vpc', disk]), /virtual size/);
});
