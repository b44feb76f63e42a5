// `sbm sync` over a qcow2 overlay on a qcow2 base, a grown disk (--resize), and the refusals.

import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { MIB, type SyncJson, bundleBytes, checkedSync, emptyBundle, qemu, qemuWrite } from './sync-rig.js';

test('sync follows a qcow2 overlay in delta mode, and a grown disk with --resize', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const base = join(dir, 'base.qcow2');
  const bundle = join(dir, 'disk.sparsebundle');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'qcow2', base, String(16 * MIB)]);
  await qemuWrite(t, 'qcow2', base, [
    [0x21, 0, 3 * MIB],
    [0x22, 9 * MIB + 100 * 512, 4096],
  ]);
  await emptyBundle(t, bundle, 16 * MIB);
  t.is((await checkedSync(t, dir, base, 'qcow2', bundle)).mode, 'full');

  const overlay = join(dir, 'overlay.qcow2');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay]);
  await qemuWrite(t, 'qcow2', overlay, [
    [0x23, 2 * MIB, 4096],
    [0x24, 14 * MIB, 4096],
  ]);
  const onOverlay = await checkedSync(t, dir, overlay, 'qcow2', bundle);
  t.is(onOverlay.mode, 'delta');
  t.is(onOverlay.bytesCompared, 2 * 65536, 'only the clusters the overlay holds');
  t.is(onOverlay.bandsWritten, 2);

  // The disk grows (the VM's disk was enlarged): refused without --resize, followed with it.
  await qemu(t, 'qemu-img', ['resize', '-q', '-f', 'qcow2', overlay, String(20 * MIB)]);
  await qemuWrite(t, 'qcow2', overlay, [[0x25, 19 * MIB, 4096]]);
  const refused = await runSbm(['sync', overlay, bundle]);
  t.is(refused.exitCode, 1);
  t.regex(refused.stderr, /^sbm: SBM_SIZE_MISMATCH: .*--resize/);
  const grown = await checkedSync(t, dir, overlay, 'qcow2', bundle, ['--resize']);
  t.is(grown.sizeBytes, 20 * MIB);
  t.is(grown.mode, 'full', 'a size change is a full compare');
  const again = await checkedSync(t, dir, overlay, 'qcow2', bundle);
  t.is(again.mode, 'delta');
  t.is(again.bandsWritten, 0);
});

test('sync refuses a bundle larger than the disk, and a missing bundle', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.raw');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'raw', disk, String(4 * MIB)]);
  const bundle = join(dir, 'big.sparsebundle');
  await emptyBundle(t, bundle, 8 * MIB);
  const larger = await runSbm(['sync', disk, bundle, '--resize']);
  t.is(larger.exitCode, 1);
  t.regex(larger.stderr, /^sbm: SBM_SIZE_MISMATCH: .*does not shrink/);
  const missing = await runSbm(['sync', disk, join(dir, 'none.sparsebundle')]);
  t.is(missing.exitCode, 1);
  t.regex(missing.stderr, /^sbm: SBM_NOT_FOUND/);
});

test('sync of a VDI made by qemu-img: full, then a delta of nothing, then in-place edits compared in full', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.vdi');
  const bundle = join(dir, 'disk.sparsebundle');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'vdi', disk, String(8 * MIB)]);
  await qemuWrite(t, 'vdi', disk, [[0x31, 3 * MIB, 8192]]);
  await emptyBundle(t, bundle, 8 * MIB);
  t.is((await checkedSync(t, dir, disk, 'vdi', bundle)).mode, 'full');
  const none = await checkedSync(t, dir, disk, 'vdi', bundle);
  t.is(none.mode, 'delta');
  t.is(none.bytesRead, 0);
  await qemuWrite(t, 'vdi', disk, [[0x32, 6 * MIB, 4096]]);
  const edited = await checkedSync(t, dir, disk, 'vdi', bundle);
  t.is(edited.mode, 'full', 'the one layer is the base, and it changed');
  t.is(edited.bandsWritten, 1);
});

test('a qcow2 synced by a relative name is the same layer when an overlay names it as its backing file', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const inDir = { cwd: dir };
  const syncJson = async (disk: string): Promise<SyncJson> => {
    const run = await runSbm(['sync', disk, 'disk.sparsebundle', '--json'], inDir);
    t.is(run.exitCode, 0, run.stderr);
    return JSON.parse(run.stdout) as SyncJson;
  };
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'base.qcow2'), String(16 * MIB)]);
  await qemuWrite(t, 'qcow2', join(dir, 'base.qcow2'), [[0x31, 0, 3 * MIB]]);
  await emptyBundle(t, join(dir, 'disk.sparsebundle'), 16 * MIB);
  t.is((await syncJson('base.qcow2')).mode, 'full', 'no record yet');

  // The overlay names its backing file relatively, as qemu-img and libvirt usually do.
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', join(dir, 'overlay.qcow2')]);
  await qemuWrite(t, 'qcow2', join(dir, 'overlay.qcow2'), [[0x32, 5 * MIB, 4096]]);
  const onOverlay = await syncJson('overlay.qcow2');
  t.is(onOverlay.mode, 'delta', onOverlay.fullReason);
  t.is(onOverlay.bytesCompared, 65536, 'only the cluster the overlay holds');
  await qemu(t, 'qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', join(dir, 'overlay.qcow2'), join(dir, 'expected.raw')]);
  t.true((await bundleBytes(join(dir, 'disk.sparsebundle'))).equals(await readFile(join(dir, 'expected.raw'))));

  // The same overlay named by its absolute path: nothing changed, nothing to compare.
  const again = await syncJson(join(dir, 'overlay.qcow2'));
  t.is(again.mode, 'delta', again.fullReason);
  t.is(again.bytesCompared, 0);
});
