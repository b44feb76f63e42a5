// Every qcow2 variant qemu-img writes converts to a bundle equal byte for byte to
// `qemu-img convert -O raw`: compat 0.10 and 1.1, 512-byte and 2 MiB clusters, extended L2
// (subclusters), deflate and zstd compressed clusters. Images hold data, zero writes, discards
// and holes. Needs `npm run build` first (runs dist/cli/sbm.js).

import test from 'ava';
import { execa } from 'execa';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { KiB, MiB, assertConvertsLikeQemu, makeMixedRaw, poke, qemuImg, qemuIo } from './qcow2-test-kit.js';

const WRITES = [
  'write -P 0xab 1M 64k',
  'write -P 0x11 100k 3k',
  'write -P 0x5c 3M 1M',
  'write -z 3M 64k',
  'write -z 6M 128k',
  'discard 3200k 64k',
  'write -P 0x77 8189k 3k',
];

for (const [label, options] of [
  ['compat-0.10', 'compat=0.10'],
  ['compat-1.1', 'compat=1.1'],
  ['cluster-512', 'cluster_size=512'],
  ['cluster-2M', 'cluster_size=2M'],
  ['extended-l2', 'extended_l2=on'],
  ['extended-l2-2M', 'extended_l2=on,cluster_size=2M'],
  ['refcount-1', 'refcount_bits=1'],
] as const) {
  test(`${label}: data, zero writes and discards convert like qemu-img`, async (t) => {
    await requireTool(t, 'qemu-img');
    await requireTool(t, 'qemu-io');
    const dir = await tempDir(t);
    const image = join(dir, `${label}.qcow2`);
    await qemuImg('create', '-q', '-f', 'qcow2', '-o', options, image, '8M');
    await qemuIo(image, ...WRITES);
    const raw = await assertConvertsLikeQemu(t, dir, image, label);
    t.is(raw[MiB], 0xab);
    t.is(raw[3 * MiB + 64 * KiB], 0x5c);
  });
}

test('extended L2: single subclusters written, zeroed and left to the backing file', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const base = join(dir, 'base.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', base, '4M');
  await qemuIo(base, 'write -P 0x33 0 4M');
  const top = join(dir, 'top.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', '-b', 'base.qcow2', '-F', 'qcow2', top);
  // 64 KiB clusters, 2 KiB subclusters: one, a few, a zeroed pair, a partial zero of a written cluster.
  await qemuIo(top, 'write -P 0xaa 0 2k', 'write -P 0xbb 10k 5k', 'write -z 200k 4k', 'write -P 0xcc 1M 64k', 'write -z 1040k 2k');
  const raw = await assertConvertsLikeQemu(t, dir, top, 'extl2-overlay');
  t.is(raw[2 * KiB], 0x33, 'an unallocated subcluster reads the backing file');
  t.is(raw[200 * KiB], 0, 'a zero subcluster hides the backing file');
});

for (const compression of ['zlib', 'zstd'] as const) {
  for (const clusterSize of ['64k', '512', '2M'] as const) {
    test(`qemu-img convert -c, ${compression}, ${clusterSize} clusters: converts like qemu-img`, async (t) => {
      await requireTool(t, 'qemu-img');
      const dir = await tempDir(t);
      const source = join(dir, 'source.raw');
      await makeMixedRaw(source, clusterSize === '2M' ? 12 * MiB : 3 * MiB, 7);
      const image = join(dir, `c-${compression}-${clusterSize}.qcow2`);
      await qemuImg(
        'convert',
        '-c',
        '-f',
        'raw',
        '-O',
        'qcow2',
        '-o',
        `compression_type=${compression},cluster_size=${clusterSize}`,
        source,
        image,
      );
      await assertConvertsLikeQemu(t, dir, image, `c-${compression}-${clusterSize}`);
      const info = JSON.parse((await runSbm(['info', image, '--json'])).stdout);
      t.is(info.compressionType, compression === 'zlib' ? 'deflate' : 'zstd');
      t.true(info.compressedClusters > 0, 'the image holds compressed clusters');
      // 2 MiB clusters each hold some compressible text: only smaller ones are stored plain.
      if (clusterSize !== '2M') t.true(info.dataClusters > 0, 'and incompressible ones stored plain');
    });
  }
}

for (const [label, options] of [
  ['extended L2, zstd', 'extended_l2=on,compression_type=zstd'],
  ['compat=0.10, deflate', 'compat=0.10'],
] as const) {
  test(`qemu-img convert -c with ${label}: converts like qemu-img`, async (t) => {
    await requireTool(t, 'qemu-img');
    const dir = await tempDir(t);
    const source = join(dir, 'source.raw');
    await makeMixedRaw(source, 2 * MiB, 13);
    const image = join(dir, 'c.qcow2');
    await qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', options, source, image);
    await assertConvertsLikeQemu(t, dir, image, label.replace(/[^a-z0-9]+/gi, '-'));
  });
}

test('an overlay with writes, zero writes and discards on a compressed base', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const source = join(dir, 'source.raw');
  await makeMixedRaw(source, 4 * MiB, 3);
  const base = join(dir, 'base.qcow2');
  await qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', source, base);
  const top = join(dir, 'top.qcow2');
  // The overlay is larger than its base: past the base's end reads zeros.
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top, '6M');
  await qemuIo(top, 'write -P 0xde 40k 8k', 'write -z 256k 64k', 'discard 512k 128k', 'write -P 0xef 5M 64k', 'write -z 1M 4k');
  const raw = await assertConvertsLikeQemu(t, dir, top, 'overlay');
  t.is(raw.length, 6 * MiB);
  // Zero writes and discards on a compressed base directly (v3: both become zero clusters).
  await qemuIo(base, 'write -z 0 64k', 'discard 768k 256k', 'write -P 0x42 2M 4k');
  await assertConvertsLikeQemu(t, dir, base, 'base-modified');
  await assertConvertsLikeQemu(t, dir, top, 'overlay-after-base-changed');
});

test('backing chains: a raw base in a subfolder by relative name, three levels, v2 in the middle', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  await mkdir(join(dir, 'disks'));
  const base = join(dir, 'disks', 'base.raw');
  await qemuImg('create', '-q', '-f', 'raw', base, '2M');
  await execa('qemu-io', ['-f', 'raw', '-c', 'write -P 0x99 0 1M', base]);
  const mid = join(dir, 'mid.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', '-b', 'disks/base.raw', '-F', 'raw', mid, '3M');
  await qemuIo(mid, 'write -P 0x21 64k 64k');
  const top = join(dir, 'top.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', top);
  await qemuIo(top, 'write -P 0x31 96k 64k', 'write -z 0 4k');
  const raw = await assertConvertsLikeQemu(t, dir, top, 'three-levels');
  t.is(raw[4096], 0x99, 'raw base data shows through two levels');
  t.is(raw[2 * MiB + 10], 0, 'past the shorter raw base reads zeros');
  const info = await runSbm(['info', top, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  const details = JSON.parse(info.stdout);
  t.is(details.backingFile, 'mid.qcow2');
  t.is(details.backingFormat, 'qcow2');
  t.is(details.compressionType, 'deflate');
});

test('a VMDK backing file, and a backing file found by content when the backing-format extension is gone', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const base = join(dir, 'base.vmdk');
  await qemuImg('create', '-q', '-f', 'vmdk', base, '2M');
  await execa('qemu-io', ['-f', 'vmdk', '-c', 'write -P 0x07 0 1M', base]);
  const top = join(dir, 'top.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.vmdk', '-F', 'vmdk', top, '3M');
  await qemuIo(top, 'write -P 0x08 512k 64k');
  await assertConvertsLikeQemu(t, dir, top, 'vmdk-backing');
  const info = JSON.parse((await runSbm(['info', top, '--json'])).stdout);
  t.is(info.backingImageFormat, 'vmdk');
  // Overwrite the backing-format extension's type with an unknown one (qemu then probes, as sbm does).
  const bytes = await readFile(top);
  const at = bytes.indexOf(Buffer.from([0xe2, 0x79, 0x2a, 0xca]), 72);
  t.true(at > 0);
  await poke(top, at, Buffer.from([0x12, 0x34, 0x56, 0x78]));
  await assertConvertsLikeQemu(t, dir, top, 'probed-backing');
  const probed = JSON.parse((await runSbm(['info', top, '--json'])).stdout);
  t.is(probed.backingFormat, undefined);
  t.is(probed.backingImageFormat, 'vmdk');
});
