// Damaged and hostile VMDKs: each fails at open with one SbmError naming the file (never zeros for
// missing data), or opens with the documented warning.

import test, { type ExecutionContext } from 'ava';
import { open, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openVmdk } from '../../../formats/vmdk/open-vmdk.js';
import { vmdkExporter } from '../../../formats/vmdk/vmdk-exporter.js';
import { type SbmErrorCode, isSbmError } from '../../../lib/errors.js';
import type { SbmWarning } from '../../../lib/warnings.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { requireTool, seededBytes, tempDir } from '../../helpers/tools.js';
import { MiB, makeSourceRaw, qemuImg } from './vmdk-test-kit.js';

async function sparseDisk(t: ExecutionContext, subformat = 'monolithicSparse'): Promise<{ dir: string; disk: string }> {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const source = join(dir, 'source.raw');
  await makeSourceRaw(source, 8 * MiB, [
    { offset: 0, length: MiB, seed: 31 },
    { offset: 6 * MiB, length: MiB, seed: 32 },
  ]);
  const disk = join(dir, 'disk.vmdk');
  await qemuImg(['convert', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${subformat}`, source, disk]);
  return { dir, disk };
}

async function patch(path: string, offset: number, bytes: number[] | Buffer): Promise<void> {
  const handle = await open(path, 'r+');
  const data = Buffer.from(bytes);
  await handle.write(data, 0, data.length, offset);
  await handle.close();
}

async function refuses(t: ExecutionContext, path: string, code: SbmErrorCode, pattern: RegExp, allowOutside = false): Promise<void> {
  const error = await t.throwsAsync(openVmdk(path, { allowOutside }));
  t.true(isSbmError(error, code), `expected ${code}, got ${String(error)}`);
  t.regex(String(error?.message), pattern);
  t.false(String(error?.message).includes('\n'), 'one line');
}

test('truncated sparse extent: grain pointers past EOF fail at open', async (t) => {
  const { disk } = await sparseDisk(t);
  const { size } = await (await import('node:fs/promises')).stat(disk);
  await truncate(disk, size - 64 * 1024);
  await refuses(t, disk, 'SBM_CORRUPT', /disk\.vmdk: grain \d+ points to sector \d+, past end of file/);
});

test('truncated streamOptimized (qemu layout) fails at open', async (t) => {
  const { disk } = await sparseDisk(t, 'streamOptimized');
  const { size } = await (await import('node:fs/promises')).stat(disk);
  await truncate(disk, size - 100 * 1024);
  await refuses(t, disk, 'SBM_CORRUPT', /past end of file|truncated/);
});

test('streamOptimized footer layout: appended padding still reads; a cut tail is refused', async (t) => {
  const dir = await tempDir(t);
  const device = new MemoryDevice(4 * MiB);
  await device.write(MiB, seededBytes(200 * 1024, 9));
  const padded = join(dir, 'padded.vmdk');
  await vmdkExporter.export(device, padded, { subformat: 'streamOptimized' });
  const original = await readFile(padded);
  await writeFile(padded, Buffer.concat([original, Buffer.alloc(4096)]));
  const image = await openVmdk(padded);
  t.true((await image.read(MiB, 200 * 1024)).equals(seededBytes(200 * 1024, 9)));
  await image.close();
  const cut = join(dir, 'cut.vmdk');
  await writeFile(cut, original.subarray(0, original.length - 1536));
  await refuses(t, cut, 'SBM_CORRUPT', /cut\.vmdk: streamOptimized footer not found/);
});

test('a corrupted compressed grain fails on read with SBM_CORRUPT', async (t) => {
  const dir = await tempDir(t);
  const device = new MemoryDevice(MiB);
  await device.write(0, seededBytes(64 * 1024, 3));
  const disk = join(dir, 'z.vmdk');
  await vmdkExporter.export(device, disk, { subformat: 'streamOptimized' });
  await patch(disk, 128 * 512 + 12 + 100, Buffer.alloc(64, 0xff)); // inside the zlib stream
  const image = await openVmdk(disk);
  t.teardown(() => image.close());
  const error = await t.throwsAsync(image.read(0, 64 * 1024));
  t.true(isSbmError(error, 'SBM_CORRUPT'), String(error));
});

test('header damage: version, magic, newline bytes, flags, grain size, capacity', async (t) => {
  const { disk } = await sparseDisk(t);
  const pristine = await readFile(disk);
  const cases: Array<{ at: number; bytes: number[]; code: SbmErrorCode; pattern: RegExp }> = [
    { at: 4, bytes: [4, 0, 0, 0], code: 'SBM_UNSUPPORTED', pattern: /unsupported sparse extent version 4/ },
    { at: 0, bytes: [0x6b, 0x64, 0x6d, 0x76], code: 'SBM_CORRUPT', pattern: /incomplete \(placeholder magic "kdmv"\)/ },
    { at: 74, bytes: [0x0a], code: 'SBM_CORRUPT', pattern: /newline check bytes/ },
    { at: 8, bytes: [3, 0, 4, 0], code: 'SBM_UNSUPPORTED', pattern: /unknown incompatible feature flags/ },
    { at: 20, bytes: [100, 0, 0, 0, 0, 0, 0, 0], code: 'SBM_CORRUPT', pattern: /grain size 100 sectors/ },
    { at: 12, bytes: [0, 0, 0, 0, 0, 0, 0, 0x7f], code: 'SBM_CORRUPT', pattern: /capacity/ },
    { at: 12, bytes: [0, 0, 0, 0, 0, 1, 0, 0], code: 'SBM_CORRUPT', pattern: /grain directory|past end of file/ },
    { at: 56, bytes: [0, 0, 0, 0, 0, 0, 0, 0], code: 'SBM_CORRUPT', pattern: /grain directory at sector 0/ },
    { at: 44, bytes: [0, 0, 0, 0], code: 'SBM_CORRUPT', pattern: /numGTEsPerGT 0/ },
  ];
  for (const item of cases) {
    await writeFile(disk, pristine);
    await patch(disk, item.at, item.bytes);
    await refuses(t, disk, item.code, item.pattern);
  }
});

test('a grain table overlapping the descriptor is refused', async (t) => {
  const { disk } = await sparseDisk(t);
  const data = await readFile(disk);
  const gdOffset = Number(data.readBigUInt64LE(56));
  await patch(disk, gdOffset * 512, [2, 0, 0, 0]); // GT 0 at sector 2: inside the descriptor
  await refuses(t, disk, 'SBM_CORRUPT', /grain table 0 at sector 2 overlaps the header, descriptor or grain directory/);
});

test('a grain pointer into the metadata area is refused', async (t) => {
  const { disk } = await sparseDisk(t);
  const data = await readFile(disk);
  const gdOffset = Number(data.readBigUInt64LE(56));
  const gt0 = data.readUInt32LE(gdOffset * 512);
  await patch(disk, gt0 * 512, [5, 0, 0, 0]);
  await refuses(t, disk, 'SBM_CORRUPT', /grain 0 points to sector 5, inside the metadata area/);
});

test('unclean-shutdown flag and stray GTE 1 (version 1) are warnings', async (t) => {
  const { disk } = await sparseDisk(t);
  const data = await readFile(disk);
  const gdOffset = Number(data.readBigUInt64LE(56));
  const gt0 = data.readUInt32LE(gdOffset * 512);
  await patch(disk, 72, [1]);
  await patch(disk, gt0 * 512 + 4 * 20, [1, 0, 0, 0]);
  const warnings: SbmWarning[] = [];
  const image = await openVmdk(disk, { onWarning: (warning) => warnings.push(warning) });
  t.teardown(() => image.close());
  t.deepEqual(warnings.map((warning) => warning.code).sort(), ['SBM_VMDK_STRAY_ZERO_GTE', 'SBM_VMDK_UNCLEAN']);
  t.true((await image.read(20 * 64 * 1024, 64 * 1024)).equals(Buffer.alloc(64 * 1024)));
  const details = await image.details();
  t.is((details.warnings as string[]).length, 2);
});

test('truncated flat extent is refused, never zero-filled', async (t) => {
  const { dir, disk } = await sparseDisk(t, 'monolithicFlat');
  await truncate(join(dir, 'disk-flat.vmdk'), 4 * MiB);
  await refuses(t, disk, 'SBM_CORRUPT', /disk-flat\.vmdk is truncated/);
});

test('missing extent is SBM_NOT_FOUND naming it', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'd.vmdk');
  await writeFile(
    disk,
    '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 2048 FLAT "gone-flat.vmdk" 0\n',
  );
  await refuses(t, disk, 'SBM_NOT_FOUND', /d\.vmdk: extent "gone-flat\.vmdk" not found/);
});
