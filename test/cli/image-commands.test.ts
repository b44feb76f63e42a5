// sbm map, compare, measure and compact through the built binary, each against real files and,
// where qemu-img has the same command, against qemu-img's own answer.

import test from 'ava';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { open, readFile, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { requireTool, runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

/** A 64 MiB sparse raw file with data at [3, 5) MiB, [20, 21) MiB and 100 KiB at 40 MiB. */
async function sparseRaw(path: string, sizeBytes = 64 * MIB): Promise<void> {
  await truncate(path, 0).catch(() => undefined);
  const handle = await open(path, 'w');
  try {
    await handle.truncate(sizeBytes);
    await handle.write(randomBytes(2 * MIB), 0, 2 * MIB, 3 * MIB);
    await handle.write(randomBytes(MIB), 0, MIB, 20 * MIB);
    await handle.write(randomBytes(100 * 1024), 0, 100 * 1024, 40 * MIB);
  } finally {
    await handle.close();
  }
}

interface QemuMapEntry {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
}

const runsOf = (entries: QemuMapEntry[]) => entries.map(({ start, length, data, zero }) => ({ start, length, data, zero }));

test("map --json's map gives qemu-img map --output=json its data and zero runs, of a raw file and of its bundle", async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const raw = join(dir, 'disk.raw');
  await sparseRaw(raw);
  const qemu = await execa('qemu-img', ['map', '--output=json', '-f', 'raw', raw]);
  const expected = runsOf(JSON.parse(qemu.stdout) as QemuMapEntry[]);
  t.true(expected.filter((entry) => entry.data).length === 3, qemu.stdout);

  const ours = await runSbm(['map', raw, '--json']);
  t.is(ours.exitCode, 0, ours.stderr);
  t.deepEqual(runsOf(JSON.parse(ours.stdout).map), expected);

  // The same disk as a bundle: bands are cut at their last data byte, so the runs are the same.
  const bundle = join(dir, 'disk.sparsebundle');
  t.is((await runSbm(['convert', raw, bundle])).exitCode, 0);
  const fromBundle = await runSbm(['map', bundle, '--json']);
  t.is(fromBundle.exitCode, 0, fromBundle.stderr);
  t.deepEqual(runsOf(JSON.parse(fromBundle.stdout).map), expected);

  // qemu-img's own qcow2 and VMDK of the same disk: sbm's readers map them as qemu does.
  for (const format of ['qcow2', 'vmdk']) {
    const image = join(dir, `disk.${format}`);
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', format, raw, image]);
    const qemuMap = runsOf(JSON.parse((await execa('qemu-img', ['map', '--output=json', image])).stdout) as QemuMapEntry[]);
    const sbmMap = await runSbm(['map', image, '--json']);
    t.is(sbmMap.exitCode, 0, sbmMap.stderr);
    t.deepEqual(runsOf(JSON.parse(sbmMap.stdout).map), qemuMap, format);
    t.true(
      qemuMap.some((entry) => entry.data && entry.start === 20 * MIB),
      format,
    );
  }

  const human = await runSbm(['map', raw]);
  t.regex(human.stdout, /^Offset +Length +Size +Kind\n0x0 +0x300000 +3\.00 MiB +hole\n0x300000 +0x200000 +2\.00 MiB +data\n/);
});

test("compare: exit 0 equal, 1 different at qemu-img compare's offset, sizes as qemu, errors exit 2 or more", async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const a = join(dir, 'a.raw');
  await sparseRaw(a);
  const bundle = join(dir, 'a.sparsebundle');
  t.is((await runSbm(['convert', a, bundle])).exitCode, 0);
  const same = await runSbm(['compare', a, bundle]);
  t.is(same.exitCode, 0, same.stderr);
  t.is(same.stdout, 'Images are identical.\n');

  // One byte changed in a hole and one in data: both tools name the same first sector.
  const b = join(dir, 'b.raw');
  await execa('cp', ['--sparse=always', a, b]);
  const handle = await open(b, 'r+');
  await handle.write(Buffer.from([0x5a]), 0, 1, 20 * MIB + 1000);
  await handle.write(Buffer.from([0x5a]), 0, 1, 30 * MIB + 7);
  await handle.close();
  const qemu = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', a, b], { reject: false });
  t.is(qemu.exitCode, 1);
  const ours = await runSbm(['compare', bundle, b]);
  t.is(ours.exitCode, 1, ours.stderr);
  t.is(ours.stdout, `${qemu.stdout}\n`);
  t.is(ours.stdout, `Content mismatch at offset ${20 * MIB + 512}!\n`);
  const json = await runSbm(['compare', bundle, b, '--json']);
  t.like(JSON.parse(json.stdout), { equal: false, offset: 20 * MIB + 512, byteOffset: 20 * MIB + 1000 });

  // A longer disk whose extra bytes are zeros is the same (with a warning), except under --strict.
  const longer = join(dir, 'longer.raw');
  await execa('cp', ['--sparse=always', a, longer]);
  await truncate(longer, 70 * MIB);
  const lenient = await runSbm(['compare', bundle, longer]);
  t.is(lenient.exitCode, 0, lenient.stderr);
  t.is(lenient.stdout, (await execa('qemu-img', ['compare', a, longer])).stdout + '\n');
  const strict = await runSbm(['compare', bundle, longer, '--strict']);
  t.is(strict.exitCode, 1);
  t.regex(strict.stdout, /^Strict mode: Image size mismatch!/);
  // Non-zero bytes past the shorter end are a difference at their offset.
  const tail = await open(longer, 'r+');
  await tail.write(Buffer.from([1]), 0, 1, 69 * MIB + 3);
  await tail.close();
  const extra = await runSbm(['compare', a, longer]);
  t.is(extra.exitCode, 1);
  t.is(extra.stdout, (await execa('qemu-img', ['compare', a, longer], { reject: false })).stdout + '\n');

  // SBM_NOT_FOUND exits 1 elsewhere; here 1 means "different", so an error exits 2.
  const missing = await runSbm(['compare', a, join(dir, 'nope.raw')]);
  t.is(missing.exitCode, 2);
  t.regex(missing.stderr, /SBM_NOT_FOUND/);
  t.is(missing.stdout, '');
  const badBundle = await runSbm(['compare', a, dir]);
  t.true((badBundle.exitCode ?? 0) >= 2, badBundle.stderr);
});

test('measure agrees with qemu-img measure for raw and qcow2, and bounds what convert and export really write', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const raw = join(dir, 'disk.raw');
  await sparseRaw(raw, 64 * MIB + 512 * 3);
  for (const target of ['raw', 'qcow2']) {
    const qemu = await execa('qemu-img', ['measure', '--output=json', '-O', target, '-f', 'raw', raw]);
    const expected = JSON.parse(qemu.stdout) as { required: number; 'fully-allocated': number };
    const ours = await runSbm(['measure', raw, '--to', target, '--json']);
    t.is(ours.exitCode, 0, ours.stderr);
    t.like(JSON.parse(ours.stdout), { target, requiredBytes: expected.required, fullyAllocatedBytes: expected['fully-allocated'] });
  }
  const human = await runSbm(['measure', raw, '--to', 'qcow2']);
  t.regex(human.stdout, /^required size: \d+ \(.+\)\nfully allocated size: \d+ \(.+\)\n$/);

  const bundle = join(dir, 'disk.sparsebundle');
  t.is((await runSbm(['convert', raw, bundle])).exitCode, 0);
  const forBundle = JSON.parse((await runSbm(['measure', raw, '--json'])).stdout);
  const bandBytes = JSON.parse((await runSbm(['info', bundle, '--json'])).stdout).bandFileBytes as number;
  t.true(bandBytes > 3 * MIB && bandBytes <= forBundle.requiredBytes, `${bandBytes} <= ${forBundle.requiredBytes}`);

  const vmdk = join(dir, 'disk.vmdk');
  t.is((await runSbm(['export', bundle, vmdk, '--format', 'vmdk'])).exitCode, 0);
  const forVmdk = JSON.parse((await runSbm(['measure', bundle, '--to', 'vmdk', '--json'])).stdout);
  t.is((await stat(vmdk)).size, forVmdk.requiredBytes); // every data grain holds random bytes: the bound is exact
});

test('compact deletes zero bands and cuts zero tails, tracked, with the snapshot and the contents intact', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 16 * MIB, bandSizeBytes: MIB });
  await bundle.write(0, randomBytes(MIB)); // band 0: all data, untouched by compact
  await bundle.write(MIB, randomBytes(MIB)); // band 1: zeroed by a write below, then deleted
  // Band 2: a full band, then zeros over all but its first 10,000 bytes (a write of zeros that ends
  // a band is stored short by the engine already; one inside stored data is written out).
  await bundle.write(2 * MIB, randomBytes(MIB));
  await bundle.write(2 * MIB + 10_000, Buffer.alloc(MIB - 10_000));
  await bundle.close();
  const snapshot = await runSbm(['snapshot', 'create', path, 'before']);
  t.is(snapshot.exitCode, 0, snapshot.stderr);
  const snapshotPath = snapshot.stdout.split('\n')[0] ?? '';
  const reopened = await SparseBundle.open(path);
  await reopened.write(MIB, Buffer.alloc(MIB)); // zeros written, as a guest's zeroing would
  await reopened.close();
  const token = (await runSbm(['token', path])).stdout.trim();
  const before = await readFile(join(snapshotPath, 'bands', '2'));
  const contentBefore = await runSbm(['export', path, join(dir, 'before.raw'), '--format', 'raw']);
  t.is(contentBefore.exitCode, 0, contentBefore.stderr);

  const compact = await runSbm(['compact', path, '--json']);
  t.is(compact.exitCode, 0, compact.stderr);
  t.like(JSON.parse(compact.stdout), { bandsRemoved: 1, bandsTrimmed: 1, bytesFreed: MIB + (MIB - 12_288), bands: ['1', '2'] });
  t.is((await stat(join(path, 'bands', '2'))).size, 12_288);
  await t.throwsAsync(stat(join(path, 'bands', '1')));

  const changed = JSON.parse((await runSbm(['changed-bands', path, '--since', token, '--json'])).stdout);
  t.deepEqual(
    changed.bands.map((band: { index: number; deleted: boolean }) => [band.index, band.deleted]),
    [
      [1, true],
      [2, false],
    ],
  );
  t.deepEqual(await readFile(join(snapshotPath, 'bands', '2')), before, 'the snapshot kept its own copy of band 2');
  t.is((await stat(join(snapshotPath, 'bands', '1'))).size, MIB, 'the snapshot still holds band 1');
  const same = await runSbm(['compare', path, join(dir, 'before.raw')]);
  t.is(same.exitCode, 0, same.stdout);
  const again = JSON.parse((await runSbm(['compact', path, '--json'])).stdout);
  t.like(again, { bandsRemoved: 0, bandsTrimmed: 0, bytesFreed: 0 });
});
