// Export to VMDK: qemu-img check passes, qemu-img compare says equal to the source, vmdkinfo
// accepts the file, holes stay unallocated, and sbm's own reader reads it back (this also covers
// the VDF5 footer layout of streamOptimized, which qemu-img cannot write).

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { vmdkExporter, finalFileName } from '../../../formats/vmdk/vmdk-exporter.js';
import { openVmdk } from '../../../formats/vmdk/open-vmdk.js';
import { RawImage } from '../../../formats/raw/raw-image.js';
import { isSbmError } from '../../../lib/errors.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { requireTool, seededBytes, tempDir } from '../../helpers/tools.js';
import { MiB, compareAllBytes, kindAt, makeSourceRaw, qemuCompare, vmdkinfo } from './vmdk-test-kit.js';

const SIZE = 70 * MiB + 3 * 512; // three windows of 32 MiB, a short last grain
const RUNS = [
  { offset: 0, length: 100 * 1024, seed: 21 },
  { offset: 33 * MiB, length: 2 * MiB, seed: 22 },
  { offset: SIZE - 1536, length: 1536, seed: 23 },
];

async function exportAndCheck(t: ExecutionContext, subformat: string): Promise<void> {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'vmdkinfo');
  const dir = await tempDir(t);
  const sourcePath = join(dir, 'source.raw');
  await makeSourceRaw(sourcePath, SIZE, RUNS);
  const source = await RawImage.open(sourcePath);
  t.teardown(() => source.close());
  const out = join(dir, 'out.vmdk');
  const progress: number[] = [];
  const result = await vmdkExporter.export(source, out, { subformat, copy: { onProgress: (p) => progress.push(p.bytesDone) } });
  t.true(result.bytesWritten > 0);
  t.is(progress[progress.length - 1], SIZE);
  const check = await execa('qemu-img', ['check', '-f', 'vmdk', out], { reject: false });
  t.is(check.exitCode, 0, check.stdout + check.stderr);
  await qemuCompare(t, sourcePath, 'raw', out, 'vmdk');
  const info = await vmdkinfo(out);
  t.is(info.mediaSize, SIZE);
  t.is(info.extentCount, 1);
  t.true((await stat(out)).size < 8 * MiB, 'holes stay unallocated');
  const image = await openVmdk(out);
  t.teardown(() => image.close());
  await compareAllBytes(t, image, sourcePath);
  t.is(await kindAt(image, 10 * MiB), 'hole');
  t.is(await kindAt(image, 34 * MiB), 'data');
  t.is((await image.details()).createType, subformat);
}

test('monolithicSparse export passes qemu-img check and compare', (t) => exportAndCheck(t, 'monolithicSparse'));
test('streamOptimized export (VDF5 footer layout) passes qemu-img check and compare', (t) => exportAndCheck(t, 'streamOptimized'));

test('all-zero data allocates no grain; memory devices export', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const device = new MemoryDevice(4 * MiB);
  await device.write(MiB, Buffer.alloc(256 * 1024)); // allocated but zero
  await device.write(2 * MiB, seededBytes(4096, 5));
  const out = join(dir, 'mem.vmdk');
  await vmdkExporter.export(device, out, { subformat: 'streamOptimized' });
  const image = await openVmdk(out);
  t.teardown(() => image.close());
  const details = await image.details();
  t.is(details.allocatedBytes, 64 * 1024);
  t.true((await image.read(2 * MiB, 4096)).equals(seededBytes(4096, 5)));
});

test('refuses an existing output and an unknown subformat', async (t) => {
  const dir = await tempDir(t);
  const device = new MemoryDevice(MiB);
  const out = join(dir, 'x.vmdk');
  await vmdkExporter.export(device, out, {});
  const exists = await t.throwsAsync(vmdkExporter.export(device, out, {}));
  t.true(isSbmError(exists, 'SBM_EXISTS'));
  const bad = await t.throwsAsync(vmdkExporter.export(device, join(dir, 'y.vmdk'), { subformat: 'monolithicFlat' }));
  t.true(isSbmError(bad, 'SBM_USAGE'));
});

test('staging names map back to the final name in the descriptor', (t) => {
  t.is(finalFileName('/x/.disk.vmdk.sbm-partial-123-abcd'), 'disk.vmdk');
  t.is(finalFileName('/x/disk.vmdk'), 'disk.vmdk');
});
