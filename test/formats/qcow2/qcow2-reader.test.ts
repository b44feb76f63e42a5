// The reader as a BlockDevice: extents() reports holes, zero clusters and data exactly (so
// convert, export and NBD stay sparse), reads across cluster and table boundaries match
// qemu-img, and details() lists internal snapshots and bitmaps by name.

import test from 'ava';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { isSbmError } from '../../../lib/errors.js';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { KiB, MiB, qemuImg, qemuIo } from './qcow2-test-kit.js';

test('extents: holes, zero clusters and data, merged; a backing file fills the holes it covers', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const base = join(dir, 'base.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', base, '1M');
  await qemuIo(base, 'write -P 0x10 512k 128k');
  const top = join(dir, 'top.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top, '2M');
  await qemuIo(top, 'write -P 0x20 0 128k', 'write -z 128k 64k', 'write -z 576k 64k');
  const image = await openImage(top);
  try {
    t.deepEqual(await image.extents(0, image.sizeBytes), [
      { offset: 0, length: 128 * KiB, kind: 'data' },
      { offset: 128 * KiB, length: 64 * KiB, kind: 'zero' },
      { offset: 192 * KiB, length: 320 * KiB, kind: 'hole' },
      { offset: 512 * KiB, length: 64 * KiB, kind: 'data' },
      { offset: 576 * KiB, length: 64 * KiB, kind: 'zero' },
      { offset: 640 * KiB, length: 2 * MiB - 640 * KiB, kind: 'hole' },
    ]);
    t.deepEqual(await image.extents(100 * KiB, 50 * KiB), [
      { offset: 100 * KiB, length: 28 * KiB, kind: 'data' },
      { offset: 128 * KiB, length: 22 * KiB, kind: 'zero' },
    ]);
    const reference = join(dir, 'ref.raw');
    await qemuImg('convert', '-f', 'qcow2', '-O', 'raw', top, reference);
    const expected = await readFile(reference);
    // Odd offsets and lengths across clusters and the overlay/base boundary.
    for (const [offset, length] of [
      [1, 3],
      [65535, 2],
      [127 * KiB + 7, 70 * KiB],
      [500 * KiB, 200 * KiB],
      [MiB - 1, 2],
      [0, 2 * MiB],
    ] as const) {
      t.true((await image.read(offset, length)).equals(expected.subarray(offset, offset + length)), `read ${offset}+${length}`);
    }
    await image.close();
    await image.close();
    const closed = await t.throwsAsync(image.read(0, 1));
    t.true(isSbmError(closed, 'SBM_CLOSED'));
  } finally {
    await image.close();
  }
});

test('512-byte clusters: many L2 tables, reads spanning them, and extents stay exact', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const path = join(dir, 'small.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', path, '1M');
  // One L2 table maps 32 KiB: these writes straddle table boundaries.
  await qemuIo(path, 'write -P 0x01 31k 2k', 'write -P 0x02 64k 96k', 'write -z 70k 1k');
  const image = await openImage(path);
  try {
    t.deepEqual(await image.extents(30 * KiB, 4 * KiB), [
      { offset: 30 * KiB, length: KiB, kind: 'hole' },
      { offset: 31 * KiB, length: 2 * KiB, kind: 'data' },
      { offset: 33 * KiB, length: KiB, kind: 'hole' },
    ]);
    const reference = join(dir, 'ref.raw');
    await qemuImg('convert', '-f', 'qcow2', '-O', 'raw', path, reference);
    t.true((await image.read(0, MiB)).equals(await readFile(reference)));
  } finally {
    await image.close();
  }
});

test('sbm info lists internal snapshots and bitmaps by name, with version, cluster size and compression', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const path = join(dir, 'snap.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', path, '4M');
  await qemuIo(path, 'write -P 0x01 0 64k');
  await qemuImg('snapshot', '-c', 'before-upgrade', path);
  await qemuIo(path, 'write -P 0x02 0 4k');
  await qemuImg('snapshot', '-c', 'after', path);
  await qemuImg('bitmap', '--add', path, 'backup-0');
  await qemuImg('bitmap', '--add', '-g', '128k', path, 'nightly');
  await qemuIo(path, 'write -P 0x03 8k 4k');
  const info = await runSbm(['info', path, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  const details = JSON.parse(info.stdout);
  t.is(details.format, 'qcow2');
  t.is(details.version, 3);
  t.is(details.clusterSizeBytes, 4096);
  t.is(details.compressionType, 'deflate');
  t.deepEqual(
    details.snapshots.map((snapshot: { id: string; name: string; diskSizeBytes: number }) => [
      snapshot.id,
      snapshot.name,
      snapshot.diskSizeBytes,
    ]),
    [
      ['1', 'before-upgrade', 4 * MiB],
      ['2', 'after', 4 * MiB],
    ],
  );
  // qemu-img info is the oracle for the bitmaps (default granularity: the cluster size).
  const qemu = JSON.parse((await execa('qemu-img', ['info', '-U', '--output=json', path])).stdout) as {
    'format-specific': { data: { bitmaps: Array<{ name: string; granularity: number }> } };
  };
  const expected = qemu['format-specific'].data.bitmaps.map((bitmap) => [bitmap.name, bitmap.granularity]);
  t.deepEqual(expected, [
    ['backup-0', 4 * KiB],
    ['nightly', 128 * KiB],
  ]);
  t.deepEqual(
    details.bitmaps.map((bitmap: { name: string; granularityBytes: number }) => [bitmap.name, bitmap.granularityBytes]),
    expected,
  );
  const text = await runSbm(['info', path]);
  t.regex(text.stdout, /before-upgrade/);
  t.regex(text.stdout, /nightly/);
  // The active disk, not a snapshot, is what converts.
  const reference = join(dir, 'ref.raw');
  await qemuImg('convert', '-f', 'qcow2', '-O', 'raw', path, reference);
  const image = await openImage(path);
  try {
    t.true((await image.read(0, 4 * MiB)).equals(await readFile(reference)));
  } finally {
    await image.close();
  }
});

test('an empty image, a size that ends mid-cluster and preallocated metadata read like qemu-img', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const empty = join(dir, 'empty.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', empty, '0');
  const zero = await openImage(empty);
  try {
    t.is(zero.sizeBytes, 0);
    t.deepEqual(await zero.extents(0, 0), []);
  } finally {
    await zero.close();
  }
  for (const [name, options, size] of [
    ['odd.qcow2', 'compat=1.1', '1000k'],
    ['prealloc.qcow2', 'preallocation=metadata', '2M'],
    ['falloc.qcow2', 'preallocation=falloc', '1M'],
  ] as const) {
    const path = join(dir, name);
    await qemuImg('create', '-q', '-f', 'qcow2', '-o', options, path, size);
    await qemuIo(path, 'write -P 0x61 900k 100k');
    const reference = join(dir, `${name}.raw`);
    await qemuImg('convert', '-f', 'qcow2', '-O', 'raw', path, reference);
    const expected = await readFile(reference);
    const image = await openImage(path);
    try {
      t.is(image.sizeBytes, expected.length, name);
      t.true((await image.read(0, image.sizeBytes)).equals(expected), name);
    } finally {
      await image.close();
    }
  }
});
