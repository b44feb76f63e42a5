// Damaged and hostile VHDs: every one fails at open with one line naming the file and the
// problem (or, where qemu tolerates the damage, opens with a warning), never a stack trace or a
// hang. Plus the dynamic-disk bitmap rule: a clear bit reads as zeros.

import test, { type ExecutionContext } from 'ava';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { VHD_DYNAMIC_HEADER, VHD_FOOTER } from '../../../formats/vhd/layouts.js';
import { SbmError } from '../../../lib/errors.js';
import { WarningList } from '../../../lib/warnings.js';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { HEADER_AT, MiB, blockStart, editFooters, fixHeaderChecksum, qemuRaw, qemuVhd } from './vhd-kit.js';

async function dynamicDisk(t: ExecutionContext): Promise<{ dir: string; disk: string; file: Buffer }> {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.vhd');
  await qemuVhd(disk, '8M', [], ['write -P 0x5a 0 4k', 'write -P 0x6b 3M 512']);
  return { dir, disk, file: await readFile(disk) };
}

async function refused(t: ExecutionContext, path: string, code: SbmError['code'], pattern: RegExp): Promise<void> {
  const error = await t.throwsAsync(
    (async () => {
      const image = await openImage(path);
      await image.close();
    })(),
    { instanceOf: SbmError },
  );
  t.is(error?.code, code, error?.message);
  t.regex(error?.message ?? '', pattern);
  t.false((error?.message ?? '').includes('\n'));
}

function flip(file: Buffer, at: number, mask: number): void {
  file.writeUInt8(file.readUInt8(at) ^ mask, at);
}

const headerField = (name: Parameters<typeof VHD_DYNAMIC_HEADER.offsetOf>[0]): number => HEADER_AT + VHD_DYNAMIC_HEADER.offsetOf(name);

test('a bad footer checksum (both copies) is SBM_CORRUPT, in one CLI line', async (t) => {
  const { disk, file } = await dynamicDisk(t);
  for (const at of [0, file.length - 512]) flip(file, at + VHD_FOOTER.offsetOf('originalSize') + 7, 1);
  await writeFile(disk, file);
  await refused(t, disk, 'SBM_CORRUPT', /footer checksum/);
  const cli = await runSbm(['convert', disk, join(disk, '..', 'out.sparsebundle'), '--no-progress']);
  t.is(cli.exitCode, 4);
  t.regex(cli.stderr, /^sbm: SBM_CORRUPT: .*disk\.vhd: VHD footer checksum at offset \d+ does not match its contents\n$/);
});

test('a damaged footer copy at offset 0: the end footer is used, warning SBM_VHD_FOOTER_COPY', async (t) => {
  const { dir, disk, file } = await dynamicDisk(t);
  const want = await qemuRaw(disk, join(dir, 'want.raw'));
  flip(file, VHD_FOOTER.offsetOf('timestamp'), 0xff);
  await writeFile(disk, file);
  const warnings = new WarningList();
  const image = await openImage(disk, { onWarning: warnings.sink });
  try {
    t.true((await image.read(0, image.sizeBytes)).equals(want));
  } finally {
    await image.close();
  }
  t.deepEqual(
    warnings.items.map((warning) => warning.code),
    ['SBM_VHD_FOOTER_COPY'],
  );
});

test('a bad dynamic header checksum is only a warning (qemu never checks it)', async (t) => {
  const { dir, disk, file } = await dynamicDisk(t);
  const want = await qemuRaw(disk, join(dir, 'want.raw'));
  file.writeUInt32BE(0x12345678, headerField('checksum'));
  await writeFile(disk, file);
  const warnings = new WarningList();
  const image = await openImage(disk, { onWarning: warnings.sink });
  try {
    t.true((await image.read(0, image.sizeBytes)).equals(want));
  } finally {
    await image.close();
  }
  t.deepEqual(
    warnings.items.map((warning) => warning.code),
    ['SBM_VHD_HEADER_CHECKSUM'],
  );
});

test('a dynamic disk truncated inside a block is SBM_CORRUPT at open', async (t) => {
  const { disk, file } = await dynamicDisk(t);
  await truncate(disk, file.length - 1024 * 1024);
  // The footer at the end is gone too; the copy at 0 still describes the disk.
  await refused(t, disk, 'SBM_CORRUPT', /ends past the end of the file .*truncated/);
});

test('a BAT entry past the end of the file, or over the header, or two blocks overlapping', async (t) => {
  const { disk, file } = await dynamicDisk(t);
  const table = Number(VHD_DYNAMIC_HEADER.decode(file, HEADER_AT).tableOffset);
  const cases: Array<[number, number, RegExp]> = [
    [2, 0x00ffffff, /block 2 at offset \d+ ends past the end/],
    [2, 1, /overlaps the dynamic header/],
    [2, file.readUInt32BE(table), /two VHD blocks overlap/],
  ];
  for (const [block, value, pattern] of cases) {
    const copy = Buffer.from(file);
    copy.writeUInt32BE(value, table + block * 4);
    fixHeaderChecksum(copy);
    await writeFile(disk, copy);
    await refused(t, disk, 'SBM_CORRUPT', pattern);
  }
});

test('block size not a power of two, a table too small, an unknown disk type', async (t) => {
  const { disk, file } = await dynamicDisk(t);
  const blockSize = Buffer.from(file);
  blockSize.writeUInt32BE(3 * MiB, headerField('blockSize'));
  fixHeaderChecksum(blockSize);
  await writeFile(disk, blockSize);
  await refused(t, disk, 'SBM_CORRUPT', /block size 3145728 is not a power of two/);
  const small = Buffer.from(file);
  small.writeUInt32BE(2, headerField('maxTableEntries'));
  fixHeaderChecksum(small);
  await writeFile(disk, small);
  await refused(t, disk, 'SBM_CORRUPT', /block table has 2 entries, too few/);
  const type = Buffer.from(file);
  editFooters(type, (footer) => footer.writeUInt32BE(5, VHD_FOOTER.offsetOf('diskType')));
  await writeFile(disk, type);
  await refused(t, disk, 'SBM_UNSUPPORTED', /disk type 5 is not supported/);
});

test('a header offset or BAT offset past the end of the file', async (t) => {
  const { disk, file } = await dynamicDisk(t);
  const header = Buffer.from(file);
  editFooters(header, (footer) => footer.writeBigUInt64BE(0xffffffffn, VHD_FOOTER.offsetOf('dataOffset')));
  await writeFile(disk, header);
  await refused(t, disk, 'SBM_CORRUPT', /dynamic header offset 4294967295 lies past the end/);
  const table = Buffer.from(file);
  table.writeBigUInt64BE(0xffffffffffffn, headerField('tableOffset'));
  fixHeaderChecksum(table);
  await writeFile(disk, table);
  await refused(t, disk, 'SBM_CORRUPT', /block table at \d+ .* past the end/);
});

test('a fixed disk shorter than its size is SBM_CORRUPT (truncated)', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'fixed.vhd');
  await qemuVhd(disk, '4M', ['subformat=fixed']);
  const file = await readFile(disk);
  await writeFile(disk, Buffer.concat([file.subarray(0, MiB), file.subarray(file.length - 512)]));
  await refused(t, disk, 'SBM_CORRUPT', /fixed VHD of \d+ bytes needs a \d+-byte file.*truncated/);
});

test('dynamic disk: a sector whose bitmap bit is 0 reads as zeros and is a zero extent', async (t) => {
  const { disk, file } = await dynamicDisk(t);
  // Sector 0 (bit 0x80 of byte 0) of block 0 holds 0x5a; clear its bit.
  file.writeUInt8(file.readUInt8(blockStart(file, 0)) & 0x7f, blockStart(file, 0));
  await writeFile(disk, file);
  const image = await openImage(disk);
  try {
    const first = await image.read(0, 1024);
    t.true(first.subarray(0, 512).every((byte) => byte === 0));
    t.true(first.subarray(512).every((byte) => byte === 0x5a));
    t.deepEqual((await image.extents(0, 2 * MiB))[0], { offset: 0, length: 512, kind: 'zero' });
  } finally {
    await image.close();
  }
});
