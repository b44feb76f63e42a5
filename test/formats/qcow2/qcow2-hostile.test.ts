// Hostile and unsupported qcow2 inputs are refused at open with one line naming the file and the
// problem (SBM_CORRUPT / SBM_UNSUPPORTED / SBM_NOT_FOUND / SBM_PATH_OUTSIDE), never a stack trace;
// the dirty bit is only a warning. Images come from qemu-img, then get damaged on purpose.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { mkdir, readFile, readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { SbmError, type SbmErrorCode } from '../../../lib/errors.js';
import type { SbmWarning } from '../../../lib/warnings.js';
import { qemuImgCreate, requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { KiB, MiB, makeMixedRaw, poke, qemuImg, qemuIo, setBit64 } from './qcow2-test-kit.js';

async function refused(
  t: ExecutionContext,
  path: string,
  code: SbmErrorCode,
  pattern: RegExp,
  options: { allowOutside?: boolean } = {},
): Promise<void> {
  const error = await t.throwsAsync(openImage(path, options));
  t.true(error instanceof SbmError, String(error));
  t.is((error as SbmError).code, code, error?.message);
  t.regex(error?.message ?? '', pattern);
  t.true(error?.message.includes(path), 'names the file');
  t.false(error?.message.includes('\n'), 'one line');
}

async function plainImage(dir: string, name = 'disk.qcow2', ...options: string[]): Promise<string> {
  const path = join(dir, name);
  await qemuImg('create', '-q', '-f', 'qcow2', ...options, path, '2M');
  await qemuIo(path, 'write -P 0x5a 0 64k', 'write -P 0x6b 1M 64k');
  return path;
}

function u64(value: bigint): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(value);
  return out;
}

function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}

test('unknown incompatible feature bits, the corrupt bit, versions and cluster sizes are refused', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const unknownBit = await plainImage(dir, 'bit20.qcow2');
  await setBit64(unknownBit, 72, 20);
  await refused(t, unknownBit, 'SBM_UNSUPPORTED', /unknown incompatible qcow2 feature\(s\) 0x100000/);
  const corrupt = await plainImage(dir, 'corrupt.qcow2');
  await setBit64(corrupt, 72, 1);
  await refused(t, corrupt, 'SBM_CORRUPT', /marked this image corrupt/);
  const version = await plainImage(dir, 'v4.qcow2');
  await poke(version, 4, u32(4));
  await refused(t, version, 'SBM_UNSUPPORTED', /unknown qcow2 version 4/);
  const clusterBits = await plainImage(dir, 'cb22.qcow2');
  await poke(clusterBits, 20, u32(22));
  await refused(t, clusterBits, 'SBM_CORRUPT', /cluster_bits 22/);
  const headerLength = await plainImage(dir, 'hl.qcow2');
  await poke(headerLength, 100, u32(0x7ffffff8));
  await refused(t, headerLength, 'SBM_CORRUPT', /header_length/);
  const extension = await plainImage(dir, 'ext.qcow2');
  await poke(extension, 112 + 4, u32(0x10000000));
  await refused(t, extension, 'SBM_CORRUPT', /header extension 0x6803f857 of 268435456 bytes runs past/);
  const compression = await plainImage(dir, 'ctype.qcow2');
  await poke(compression, 104, Buffer.from([7]));
  await setBit64(compression, 72, 3);
  await refused(t, compression, 'SBM_UNSUPPORTED', /unknown qcow2 compression type 7/);
});

test('encrypted images (AES and LUKS) and external data files are refused as unsupported', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  for (const format of ['aes', 'luks']) {
    const path = join(dir, `${format}.qcow2`);
    await qemuImgCreate([
      '-q',
      '-f',
      'qcow2',
      '--object',
      'secret,id=s0,data=123456',
      '-o',
      `encrypt.format=${format},encrypt.key-secret=s0`,
      path,
      '1M',
    ]);
    await refused(t, path, 'SBM_UNSUPPORTED', new RegExp(`encrypted qcow2 images \\(${format === 'aes' ? 'AES' : 'LUKS'}\\)`));
  }
  const external = join(dir, 'external.qcow2');
  // qemu-img creates a relative data file in its working folder: run it in the test's folder.
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'data_file=external.raw', external, '1M'], { cwd: dir });
  await refused(t, external, 'SBM_UNSUPPORTED', /external data file \("external.raw"\)/);
});

test('the dirty bit is a warning and the disk still reads', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const path = await plainImage(dir, 'dirty.qcow2', '-o', 'lazy_refcounts=on');
  await setBit64(path, 72, 0);
  const warnings: SbmWarning[] = [];
  const image = await openImage(path, { onWarning: (warning) => warnings.push(warning) });
  try {
    t.deepEqual(
      warnings.map((warning) => warning.code),
      ['SBM_QCOW2_DIRTY'],
    );
    t.is((await image.read(0, 1))[0], 0x5a);
    t.true((await image.details()).dirty as boolean);
  } finally {
    await image.close();
  }
  const strict = await runSbm(['convert', path, join(dir, 'out.sparsebundle'), '--no-progress', '--strict']);
  t.is(strict.exitCode, 4);
  t.regex(strict.stderr, /^sbm: SBM_STRICT: SBM_QCOW2_DIRTY: .*not closed cleanly/);
});

test('tables past the end of the file, truncation and pointers into metadata are SBM_CORRUPT', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const l1 = await plainImage(dir, 'l1.qcow2');
  await poke(l1, 40, u64(0x7fff0000n));
  await refused(t, l1, 'SBM_CORRUPT', /L1 table .* past the end of the file/);
  const l1Size = await plainImage(dir, 'l1size.qcow2');
  await poke(l1Size, 36, u32(0));
  await refused(t, l1Size, 'SBM_CORRUPT', /L1 table has 0 entries/);
  const huge = await plainImage(dir, 'huge.qcow2');
  await poke(huge, 24, u64(1n << 60n));
  await refused(t, huge, 'SBM_CORRUPT', /virtual size is .* larger than 2\^53/);

  const truncated = await plainImage(dir, 'truncated.qcow2');
  await truncate(truncated, (await stat(truncated)).size - 32 * KiB);
  await refused(t, truncated, 'SBM_CORRUPT', /L2 entry of guest cluster 16 points at .* outside the data area/);

  // An L2 entry aimed at the L1 table's cluster (qemu notices only on write or check).
  const overlap = await plainImage(dir, 'overlap.qcow2');
  const bytes = await readFile(overlap);
  const l1Offset = Number(bytes.readBigUInt64BE(40));
  const l2Offset = Number(bytes.readBigUInt64BE(l1Offset) & 0x00fffffffffffe00n);
  await poke(overlap, l2Offset, u64((1n << 63n) | BigInt(l1Offset)));
  await refused(t, overlap, 'SBM_CORRUPT', /guest cluster 0 points at .* which holds metadata/);

  // Every L1 entry naming the same L2 table: refused, not validated once per entry.
  const shared = join(dir, 'shared.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', shared, '1M');
  await qemuIo(shared, 'write -P 0x01 0 512', 'write -P 0x02 64k 512');
  const sharedBytes = await readFile(shared);
  const sharedL1 = Number(sharedBytes.readBigUInt64BE(40));
  await poke(shared, sharedL1 + 8 * 2, sharedBytes.subarray(sharedL1, sharedL1 + 8));
  await refused(t, shared, 'SBM_CORRUPT', /L2 table 2 at \d+ is also named by another L1 entry/);

  const reserved = await plainImage(dir, 'reserved.qcow2');
  await poke(reserved, l2Offset + 8 * 16, u64((1n << 63n) | (1n << 58n) | 0x50000n));
  await refused(t, reserved, 'SBM_CORRUPT', /guest cluster 16 has reserved bits set/);

  const source = join(dir, 'mixed.raw');
  await makeMixedRaw(source, 2 * MiB, 5);
  const compressed = join(dir, 'compressed.qcow2');
  await qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', source, compressed);
  await truncate(compressed, (await stat(compressed)).size - 70000);
  await refused(t, compressed, 'SBM_CORRUPT', /L2 entry of guest cluster \d+ points at .* outside the data area/);
});

test('damaged compressed streams fail the read with SBM_CORRUPT, for deflate and zstd', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const source = join(dir, 'text.raw');
  await execa('sh', ['-c', `yes 'compressible line of text' | head -c ${MiB} > ${source}`]);
  for (const type of ['zlib', 'zstd']) {
    const path = join(dir, `${type}.qcow2`);
    await qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `compression_type=${type}`, source, path);
    const bytes = await readFile(path);
    const l1Offset = Number(bytes.readBigUInt64BE(40));
    const l2Offset = Number(bytes.readBigUInt64BE(l1Offset) & 0x00fffffffffffe00n);
    const entry = bytes.readBigUInt64BE(l2Offset);
    const hostOffset = Number(entry & ((1n << 54n) - 1n));
    await poke(path, hostOffset, Buffer.alloc(16, 0xff));
    const image = await openImage(path);
    try {
      const error = await t.throwsAsync(image.read(0, 4096));
      t.true(error instanceof SbmError, String(error));
      t.is((error as SbmError).code, 'SBM_CORRUPT');
      t.regex(error?.message ?? '', /compressed cluster at \d+/);
      t.true((await image.read(64 * KiB, 4096)).equals((await readFile(source)).subarray(64 * KiB, 68 * KiB)), 'other clusters still read');
    } finally {
      await image.close();
    }
  }
});

test('backing files: loops, missing files, names outside the folder and unknown formats', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'b.qcow2', '-F', 'qcow2', join(dir, 'a.qcow2'), '1M');
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'a.qcow2', '-F', 'qcow2', join(dir, 'b.qcow2'), '1M');
  await refused(t, join(dir, 'a.qcow2'), 'SBM_CORRUPT', /backing chain loops back/);
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'gone.qcow2', '-F', 'qcow2', join(dir, 'orphan.qcow2'), '1M');
  await refused(t, join(dir, 'orphan.qcow2'), 'SBM_NOT_FOUND', /backing file "gone.qcow2" not found/);

  const sub = join(dir, 'sub');
  await mkdir(sub);
  await qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'outer.qcow2'), '1M');
  await qemuIo(join(dir, 'outer.qcow2'), 'write -P 0x44 0 4k');
  const escaping = join(sub, 'top.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', '../outer.qcow2', '-F', 'qcow2', escaping);
  await refused(t, escaping, 'SBM_PATH_OUTSIDE', /backing file "\.\.\/outer\.qcow2" lies outside the image's folder/);
  const allowed = await openImage(escaping, { allowOutside: true });
  try {
    t.is((await allowed.read(0, 1))[0], 0x44, '--allow-outside follows it');
  } finally {
    await allowed.close();
  }
  const absolute = join(sub, 'absolute.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', join(dir, 'outer.qcow2'), '-F', 'qcow2', absolute);
  await refused(t, absolute, 'SBM_PATH_OUTSIDE', /lies outside the image's folder/);

  const unknownFormat = join(dir, 'fmt.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', 'outer.qcow2', '-F', 'qcow2', unknownFormat);
  const bytes = await readFile(unknownFormat);
  await poke(unknownFormat, bytes.indexOf('qcow2', 112), Buffer.from('xyzw1'));
  await refused(t, unknownFormat, 'SBM_UNSUPPORTED', /backing format "xyzw1" is not one sbm reads/);
});

test('the CLI prints one line, exits 4 and writes nothing for a refused image', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const path = await plainImage(dir, 'bad.qcow2');
  await setBit64(path, 72, 33);
  const before = (await readdir(dir)).sort();
  for (const args of [
    ['convert', path, '--no-progress'],
    ['info', path],
  ]) {
    const result = await runSbm(args);
    t.is(result.exitCode, 4, result.stderr);
    t.is(result.stderr, `sbm: SBM_UNSUPPORTED: ${path}: unknown incompatible qcow2 feature(s) 0x200000000 (bit 33)\n`);
  }
  t.deepEqual((await readdir(dir)).sort(), before);
});
