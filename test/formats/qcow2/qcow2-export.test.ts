// sbm export --format qcow2 against real qemu-img: every image passes `qemu-img check` (no errors,
// no leaks) and `qemu-img compare` equal to the source, and sbm's own reader reads it back. The
// sources hold holes, zero runs, data in the last (partial) cluster, and disks that need more than
// one L2 table; holes and zero clusters must take no space, with and without --compress.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { writeQcow2 } from '../../../formats/qcow2/qcow2-writer.js';
import { RawImage } from '../../../formats/raw/raw-image.js';
import { requireTool, runSbm, seededBytes, tempDir } from '../../helpers/tools.js';
import {
  KiB,
  MiB,
  type Run,
  assertQemuCheckClean,
  assertQemuCompareEqual,
  assertSbmReadsEqual,
  exportRaw,
  l1Entries,
  makeBundle,
} from './qcow2-export-kit.js';

const GiB = 1024 * MiB;

interface Case {
  readonly sizeBytes: number;
  readonly runs: readonly Run[];
  readonly compress: boolean;
}

async function exportAndCheck(t: ExecutionContext, c: Case): Promise<{ image: string; raw: string; bundle: string }> {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const bundle = join(dir, 'vm.sparsebundle');
  await makeBundle(bundle, c.sizeBytes, c.runs);
  const image = join(dir, 'vm.qcow2');
  const args = ['export', bundle, image, '--json', '--no-progress', ...(c.compress ? ['--compress'] : [])];
  const exported = await runSbm(args);
  t.is(exported.exitCode, 0, exported.stderr);
  t.like(JSON.parse(exported.stdout), { format: 'qcow2', sizeBytes: c.sizeBytes });
  const raw = join(dir, 'vm.raw');
  await exportRaw(t, bundle, raw);
  await assertQemuCheckClean(t, image);
  await assertQemuCompareEqual(t, raw, image);
  await assertSbmReadsEqual(t, bundle, image);
  const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', image])).stdout);
  t.like(info, { format: 'qcow2', 'virtual-size': c.sizeBytes, 'cluster-size': 64 * KiB, 'format-specific': { data: { compat: '1.1' } } });
  return { image, raw, bundle };
}

// 70 MiB + 3 sectors: not a multiple of the cluster size; the last cluster holds data.
const MIXED_SIZE = 70 * MiB + 3 * 512;
const MIXED_RUNS: Run[] = [
  { offset: 0, length: 100 * KiB, fill: 11 },
  { offset: 5 * MiB, length: 600 * KiB, fill: 'text' },
  { offset: 9 * MiB, length: 1 * MiB, fill: 'zero' }, // allocated in the bundle, all zeros
  { offset: 20 * MiB + 4 * KiB, length: 7, fill: 12 }, // a few bytes inside an otherwise empty cluster
  { offset: 33 * MiB, length: 2 * MiB, fill: 13 },
  { offset: MIXED_SIZE - 1536, length: 1536, fill: 14 },
];

for (const compress of [false, true]) {
  test(`holes, zero runs and data in the last partial cluster${compress ? ', --compress' : ''}`, async (t) => {
    const { image } = await exportAndCheck(t, { sizeBytes: MIXED_SIZE, runs: MIXED_RUNS, compress });
    const report = await assertQemuCheckClean(t, image);
    // Guest clusters with data: 2 + 10 + 1 + 32 + 1 = 46; the zero MiB and the holes take none.
    const dataClusters = 46;
    t.is(report['allocated-clusters'], dataClusters);
    const fileSize = (await stat(image)).size;
    if (compress) {
      // The 10 text clusters, and the 3 clusters that are partly zeros (the end of the 100 KiB run,
      // the 7 bytes, the last cluster); the 33 clusters of pure random bytes are stored as they are.
      t.is(report['compressed-clusters'], 13);
      // 33 plain clusters, the 13 streams packed into at most 3 clusters, and 5 of metadata.
      t.true(fileSize <= (33 + 3 + 5) * 64 * KiB, `${fileSize} bytes`);
    } else {
      t.is(report['compressed-clusters'] ?? 0, 0);
      // Plus the header, the L1 table, one L2 table, the refcount table and one refcount block.
      t.is(fileSize, (dataClusters + 5) * 64 * KiB, 'holes and zero clusters take no space');
    }
    const reader = await openImage(image);
    t.teardown(() => reader.close());
    t.like(await reader.extents(9 * MiB, MiB), [{ offset: 9 * MiB, length: MiB, kind: 'hole' }]);
    t.like(await reader.extents(MIXED_SIZE - 512, 512), [{ kind: 'data' }]);
  });
}

for (const compress of [false, true]) {
  test(`a 1.5 GiB sparse disk: three L2 tables, one for each slot with data${compress ? ', --compress' : ''}`, async (t) => {
    const size = GiB + GiB / 2;
    const runs: Run[] = [
      { offset: MiB, length: 256 * KiB, fill: 'text' },
      { offset: 512 * MiB - 64 * KiB, length: 128 * KiB, fill: 21 }, // across the first L2 table's end
      { offset: size - 300 * KiB, length: 300 * KiB, fill: 22 },
    ];
    const { image } = await exportAndCheck(t, { sizeBytes: size, runs, compress });
    const l1 = await l1Entries(image);
    t.is(l1.length, 3);
    t.true(
      l1.every((entry) => entry !== 0n && (entry & (1n << 63n)) !== 0n),
      'each slot maps data: L2 present, copied flag set',
    );
    t.true((await stat(image)).size < 2 * MiB);
  });
}

test('an L1 slot with no data gets no L2 table; a disk of several TiB exports in a small file', async (t) => {
  const size = 3 * 1024 * GiB;
  const runs: Run[] = [
    { offset: 0, length: 64 * KiB, fill: 31 },
    { offset: size - 4 * KiB, length: 4 * KiB, fill: 32 },
  ];
  const { image } = await exportAndCheck(t, { sizeBytes: size, runs, compress: false });
  const l1 = await l1Entries(image);
  t.is(l1.length, 6144);
  t.deepEqual(
    l1.flatMap((entry, index) => (entry === 0n ? [] : [index])),
    [0, 6143],
  );
  t.true((await stat(image)).size < MiB, `${(await stat(image)).size} bytes`);
});

test('a raw source whose size is not a multiple of 512 exports rounded up, as qemu-img reads it', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const raw = join(dir, 'odd.raw');
  const size = 3 * MiB + 1000;
  const handle = await open(raw, 'w');
  await handle.truncate(size);
  await handle.write(seededBytes(1000, 41), 0, 1000, 3 * MiB);
  await handle.write(seededBytes(4096, 42), 0, 4096, 0);
  await handle.close();
  for (const compress of [false, true]) {
    const image = join(dir, `odd${compress ? '-c' : ''}.qcow2`);
    const exported = await runSbm(['export', raw, image, '--no-progress', ...(compress ? ['--compress'] : [])]);
    t.is(exported.exitCode, 0, exported.stderr);
    await assertQemuCheckClean(t, image);
    await assertQemuCompareEqual(t, raw, image);
    await assertSbmReadsEqual(t, raw, image);
    const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', image])).stdout);
    t.is(info['virtual-size'], 3 * MiB + 1024);
  }
});

test('an empty disk and an all-zero disk export as valid images with no data cluster', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const bundle = join(dir, 'zero.sparsebundle');
  await makeBundle(bundle, 16 * MiB, [{ offset: 0, length: 8 * MiB, fill: 'zero' }]);
  const image = join(dir, 'zero.qcow2');
  t.is((await runSbm(['export', bundle, image])).exitCode, 0);
  const report = await assertQemuCheckClean(t, image);
  t.is(report['allocated-clusters'] ?? 0, 0);
  t.is((await stat(image)).size, 4 * 64 * KiB, 'header, L1, refcount table and block only');
  t.deepEqual(await l1Entries(image), [0n]);
  const empty = join(dir, 'empty.raw');
  await createFile(empty);
  const emptyImage = join(dir, 'empty.qcow2');
  const exported = await runSbm(['export', empty, emptyImage]);
  t.is(exported.exitCode, 0, exported.stderr);
  await assertQemuCheckClean(t, emptyImage);
  const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', emptyImage])).stdout);
  t.is(info['virtual-size'], 0);
});

async function createFile(path: string): Promise<string> {
  const handle = await open(path, 'w');
  await handle.close();
  return path;
}

test('512-byte clusters: hundreds of L2 tables and refcount blocks between the data, a refcount table of several clusters', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const size = 12 * MiB + 512;
  const raw = join(dir, 'source.raw');
  const handle = await open(raw, 'w');
  await handle.truncate(size);
  await handle.write(seededBytes(10 * MiB, 51), 0, 10 * MiB, 0);
  await handle.write(Buffer.from('compressible text, 512-byte clusters\n'.repeat(20_000)), 0, 700_000, 10 * MiB + 4096);
  await handle.close();
  const source = await RawImage.open(raw);
  t.teardown(() => source.close());
  for (const compress of [false, true]) {
    const image = join(dir, `small-clusters${compress ? '-c' : ''}.qcow2`);
    const out = await open(image, 'wx');
    try {
      await writeQcow2(source, out, image, { compress, clusterBits: 9 });
    } finally {
      await out.close();
    }
    const report = await assertQemuCheckClean(t, image);
    t.is(report['allocated-clusters'], Math.ceil((10 * MiB + 4096 + 700_000) / 512) - 8, 'one per non-zero cluster');
    await assertQemuCompareEqual(t, raw, image);
    await assertSbmReadsEqual(t, raw, image);
    const header = await readFile(image);
    t.is(header.readUInt32BE(20), 9, 'cluster_bits');
    t.true(header.readUInt32BE(56) >= 2, 'refcount table spans several clusters');
  }
});
