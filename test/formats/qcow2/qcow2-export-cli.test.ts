// The qcow2 exporter through the commands: restore of a backup set to qcow2 (by --to and by the
// target's name), the --force rules, an output inside the input, --compress where the format has
// no compression, and no half-written file when the source fails mid-export.

import test from 'ava';
import { execa } from 'execa';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { qcow2Exporter } from '../../../formats/qcow2/qcow2-exporter.js';
import { ERROR_CODES, SbmError, isSbmError } from '../../../lib/errors.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { requireTool, runSbm, seededBytes, tempDir } from '../../helpers/tools.js';
import { KiB, MiB, assertQemuCheckClean, assertQemuCompareEqual, exportRaw, makeBundle } from './qcow2-export-kit.js';

test('restore --to qcow2 (and a target named .qcow2) from a backup set passes qemu-img check and compare', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await makeBundle(disk, 40 * MiB, [
    { offset: 0, length: 300 * KiB, fill: 1 },
    { offset: 17 * MiB, length: 2 * MiB, fill: 'text' },
  ]);
  const dest = join(dir, 'dest');
  const first = await runSbm(['backup', disk, dest, '--json']);
  t.is(first.exitCode, 0, first.stderr);
  const backupPath = JSON.parse(first.stdout).path as string;
  const raw = join(dir, 'vm.raw');
  await exportRaw(t, disk, raw);

  const byOption = join(dir, 'restored.img.out');
  const restored = await runSbm(['restore', backupPath, byOption, '--to', 'qcow2', '--json']);
  t.is(restored.exitCode, 0, restored.stderr);
  t.like(JSON.parse(restored.stdout), { format: 'qcow2' });
  t.is((await readFile(byOption)).subarray(0, 4).toString('latin1'), 'QFI\xfb');
  await assertQemuCheckClean(t, byOption);
  await assertQemuCompareEqual(t, raw, byOption);

  const byName = join(dir, 'restored.qcow2');
  const named = await runSbm(['restore', backupPath, byName, '--json']);
  t.is(named.exitCode, 0, named.stderr);
  t.like(JSON.parse(named.stdout), { format: 'qcow2' });
  await assertQemuCheckClean(t, byName);
  await assertQemuCompareEqual(t, raw, byName);

  // An existing target is kept without --force and replaced with it.
  await writeFile(byName, 'keep me');
  const refused = await runSbm(['restore', backupPath, byName]);
  t.is(refused.exitCode, ERROR_CODES.SBM_EXISTS.exitCode, refused.stderr);
  t.regex(refused.stderr, /SBM_EXISTS/);
  t.is(await readFile(byName, 'utf8'), 'keep me');
  t.is((await runSbm(['restore', backupPath, byName, '--force'])).exitCode, 0);
  await assertQemuCheckClean(t, byName);
  await assertQemuCompareEqual(t, raw, byName);
  t.deepEqual(
    (await readdir(dir)).filter((name) => name.includes('sbm-')),
    [],
    'no staging leftovers',
  );
});

test('export to qcow2: existing output needs --force, output inside the input refused, --compress only for qcow2', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await makeBundle(disk, 8 * MiB, [{ offset: MiB, length: 100 * KiB, fill: 7 }]);
  const out = join(dir, 'out.qcow2');
  await writeFile(out, 'old');
  const refused = await runSbm(['export', disk, out]);
  t.is(refused.exitCode, ERROR_CODES.SBM_EXISTS.exitCode, refused.stderr);
  t.is(await readFile(out, 'utf8'), 'old');
  const forced = await runSbm(['export', disk, out, '--force', '--compress', '--json']);
  t.is(forced.exitCode, 0, forced.stderr);
  await assertQemuCheckClean(t, out);

  const inside = await runSbm(['export', disk, join(disk, 'inside.qcow2')]);
  t.is(inside.exitCode, ERROR_CODES.SBM_OUTPUT_INSIDE_INPUT.exitCode, inside.stderr);
  t.regex(inside.stderr, /SBM_OUTPUT_INSIDE_INPUT/);
  t.false((await readdir(disk)).some((name) => name.includes('inside')));

  const raw = await runSbm(['export', disk, join(dir, 'out.raw'), '--compress']);
  t.is(raw.exitCode, 2, raw.stderr);
  t.regex(raw.stderr, /^sbm: SBM_USAGE: --compress/);
  t.false((await readdir(dir)).includes('out.raw'));
});

test('the exporter reports progress, refuses an existing file and removes its own file when the source fails', async (t) => {
  const dir = await tempDir(t);
  const device = new MemoryDevice(4 * MiB);
  await device.write(0, seededBytes(64 * KiB, 3));
  const out = join(dir, 'x.qcow2');
  const progress: number[] = [];
  const result = await qcow2Exporter.export(device, out, { copy: { onProgress: (p) => progress.push(p.bytesDone) } });
  t.like(result, { bytesRead: 64 * KiB });
  t.deepEqual(progress, [64 * KiB, 4 * MiB], 'after each batch of data, then after each L1 slot');
  const exists = await t.throwsAsync(qcow2Exporter.export(device, out, {}));
  t.true(isSbmError(exists, 'SBM_EXISTS'));

  const failing = new MemoryDevice(4 * MiB);
  await failing.write(3 * MiB, seededBytes(64 * KiB, 4));
  failing.read = async () => {
    throw new SbmError('SBM_IO', 'read failed on purpose');
  };
  const broken = join(dir, 'broken.qcow2');
  const error = await t.throwsAsync(qcow2Exporter.export(failing, broken, { compress: true }));
  t.true(isSbmError(error, 'SBM_IO'));
  t.deepEqual((await readdir(dir)).sort(), ['x.qcow2']);
});

test('a qcow2 export that fills its filesystem fails with SBM_NO_SPACE and leaves nothing behind', async (t) => {
  await requireTool(t, 'mount');
  const dir = await tempDir(t);
  const mountPoint = join(dir, 'small');
  await mkdir(mountPoint);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint]);
  t.teardown(() => execa('umount', [mountPoint]).then(() => undefined));
  const disk = join(dir, 'vm.sparsebundle');
  await makeBundle(disk, 32 * MiB, [{ offset: 0, length: 12 * MiB, fill: 9 }]);
  const full = await runSbm(['export', disk, join(mountPoint, 'vm.qcow2'), '--no-progress']);
  t.is(full.exitCode, ERROR_CODES.SBM_NO_SPACE.exitCode, full.stderr);
  t.regex(full.stderr, /^sbm: SBM_NO_SPACE: /);
  t.deepEqual(await readdir(mountPoint), []);
});
