// `sbm sync` over a VMDK chain qemu-img builds step by step, as a VM's snapshots would: edits in
// place, a new delta, a second delta on top, a delta merged back. Each step checks the bundle
// against `qemu-img convert`, changed-bands and untouched bands (sync-rig.ts), and the mode.

import test from 'ava';
import { join } from 'node:path';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { MIB, checkedSync, emptyBundle, qemu, qemuWrite } from './sync-rig.js';

const SIZE = 24 * MIB;

test('sync follows a VMDK chain: in-place edits, new deltas, a merge; delta mode reads only the new layers', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const base = join(dir, 'disk.vmdk');
  const bundle = join(dir, 'disk.sparsebundle');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'vmdk', base, String(SIZE)]);
  await qemuWrite(t, 'vmdk', base, [
    [0x11, 0, 2 * MIB],
    [0x22, 5 * MIB + 4096, 8192],
    [0x33, 12 * MIB - 4096, 8192], // across a band edge
    [0x44, SIZE - 65536, 65536],
  ]);
  await emptyBundle(t, bundle, SIZE);

  const first = await checkedSync(t, dir, base, 'vmdk', bundle);
  t.is(first.mode, 'full', 'no record yet');
  t.is(first.bandsWritten, 6, 'bands 0, 1, 5, 11, 12, 23');

  const again = await checkedSync(t, dir, base, 'vmdk', bundle);
  t.is(again.mode, 'delta');
  t.is(again.bytesRead, 0, 'nothing changed: nothing is read');

  // In place: the single layer is the base, so it changed: a full compare, hash-first.
  await qemuWrite(t, 'vmdk', base, [
    [0x55, 1 * MIB, 4096],
    [0x00, 5 * MIB, 65536], // zeros over data
    [0x66, 20 * MIB, 4096],
  ]);
  const inPlace = await checkedSync(t, dir, base, 'vmdk', bundle);
  t.is(inPlace.mode, 'full');
  // The source's allocated grains (2 MiB + 5 grains), plus the bundle side of the 3 bands whose hash moved.
  t.is(inPlace.bytesRead, 2 * MIB + 5 * 65536 + 3 * MIB);

  // A snapshot: the base is frozen, new writes go to a delta.
  const delta1 = join(dir, 'disk-000001.vmdk');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'vmdk', '-b', base, '-F', 'vmdk', delta1]);
  await qemuWrite(t, 'vmdk', delta1, [
    [0x77, 3 * MIB, 4096],
    [0x11, 0, 65536], // the same bytes as before: compared, not written
    [0x00, 12 * MIB - 4096, 8192], // zeros over the band-edge data
  ]);
  const onDelta = await checkedSync(t, dir, delta1, 'vmdk', bundle);
  t.is(onDelta.mode, 'delta');
  t.is(onDelta.bytesCompared, 4 * 65536, 'only the grains the delta holds');
  t.is(onDelta.bandsWritten, 3);

  // A second snapshot on top; the first delta is frozen now.
  const delta2 = join(dir, 'disk-000002.vmdk');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'vmdk', '-b', delta1, '-F', 'vmdk', delta2]);
  await qemuWrite(t, 'vmdk', delta2, [
    [0x88, 7 * MIB, 4096],
    [0x99, 23 * MIB, 4096],
  ]);
  const onDelta2 = await checkedSync(t, dir, delta2, 'vmdk', bundle);
  t.is(onDelta2.mode, 'delta');
  t.is(onDelta2.bytesCompared, 2 * 65536, 'only the second delta is read');

  // Merge the second delta back into the first: the same disk, so nothing to write.
  await qemu(t, 'qemu-img', ['commit', '-q', '-f', 'vmdk', delta2]);
  const merged = await checkedSync(t, dir, delta1, 'vmdk', bundle);
  t.is(merged.mode, 'delta');
  t.is(merged.bandsWritten, 0, 'the merged chain reads as the synced one');

  // Further writes to the merged delta.
  await qemuWrite(t, 'vmdk', delta1, [[0xaa, 9 * MIB, 4096]]);
  const afterMerge = await checkedSync(t, dir, delta1, 'vmdk', bundle);
  t.is(afterMerge.mode, 'delta');
  t.is(afterMerge.bandsWritten, 1);

  // Back to the base alone (the deltas discarded): the base is unchanged, so still a delta.
  const discarded = await checkedSync(t, dir, base, 'vmdk', bundle);
  t.is(discarded.mode, 'delta');
  t.true(discarded.bandsWritten > 0);

  const full = await checkedSync(t, dir, delta1, 'vmdk', bundle, ['--full']);
  t.is(full.mode, 'full');
  t.is(full.fullReason, '--full');
  const check = await runSbm(['check', bundle]);
  t.is(check.exitCode, 0, check.stdout + check.stderr);
});
