// VHDX files written by Windows itself (test/fixtures/hyperv/, sources in test/fixtures/README.md):
// a dynamic disk with every common block state, and a disk whose log still holds changes. sbm
// must read the first as qemu-img does, and the second as qemu-img does once `qemu-img check -r
// all` has replayed its log into the file (sbm replays it in memory and never writes the file).

import test from 'ava';
import { execa } from 'execa';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import Bunzip from 'seek-bzip';
import { openVhdx } from '../../../formats/vhdx/open-vhdx.js';
import { SbmError } from '../../../lib/errors.js';
import { REPO_ROOT, requireTool, runSbm, tempDir } from '../../helpers/tools.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'hyperv');

/** sbm's reading of `image` (convert, then export raw), as bytes. */
async function sbmReading(dir: string, image: string): Promise<Buffer> {
  const bundle = join(dir, 'disk.sparsebundle');
  const converted = await runSbm(['convert', image, bundle, '--force', '--no-progress']);
  if (converted.exitCode !== 0) throw new Error(converted.stderr);
  const ours = join(dir, 'sbm.raw');
  const exported = await runSbm(['export', bundle, ours, '--format', 'raw', '--force']);
  if (exported.exitCode !== 0) throw new Error(exported.stderr);
  return readFile(ours);
}

/** qemu-img's reading of `image`, as bytes. */
async function qemuReading(dir: string, image: string): Promise<Buffer> {
  const theirs = join(dir, 'qemu.raw');
  await execa('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', image, theirs]);
  return readFile(theirs);
}

test('a dynamic VHDX written by Windows 8.1 reads as qemu-img reads it, with its block states and creator', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const image = join(dir, 'config2_base.vhdx');
  await writeFile(image, Bunzip.decode(await readFile(join(FIXTURES, 'config2_base.vhdx.bz2'))));

  const info = await runSbm(['info', image, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  const details = JSON.parse(info.stdout) as Record<string, unknown>;
  t.is(details.creator, 'Microsoft Windows 6.3.9600.16521');
  t.is(details.sizeBytes, 100 * 1024 * 1024);
  t.is(details.physicalSectorSize, 4096);
  t.deepEqual(details.blockStates, { fullyPresent: 1, notPresent: 1, zero: 2 });

  const [ours, theirs] = [await sbmReading(dir, image), await qemuReading(dir, image)];
  t.is(ours.length, theirs.length);
  t.true(ours.equals(theirs), 'byte for byte what qemu-img reads');
  t.is(ours.readUInt16LE(510), 0xaa55, 'an MBR disk');
  t.is(ours[446 + 4], 0x0b, 'its partition is FAT32');
});

test('a VHDX whose log Windows left unreplayed reads as qemu-img reads it once qemu-img has replayed the log', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const image = join(dir, 'vhdx-log-replay.vhdx');
  const original = gunzipSync(await readFile(join(FIXTURES, 'vhdx-log-replay.vhdx.gz')));
  await writeFile(image, original);

  const qemu = await execa('qemu-img', ['info', image], { reject: false });
  t.not(qemu.exitCode, 0);
  t.regex(qemu.stderr, /log that needs to be replayed/);
  const info = await runSbm(['info', image, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  const details = JSON.parse(info.stdout) as Record<string, unknown>;
  t.regex(String(details.logReplayed), /^in memory, 2 entries \(head sequence 80117443871106391\)$/);
  // Before the replay every block is "not present": the replay is what makes the disk readable.
  t.deepEqual(details.blockStates, { fullyPresent: 1, notPresent: 28, zero: 3 });
  t.deepEqual(details.warnings, []);

  const replayed = join(dir, 'replayed.vhdx');
  await copyFile(image, replayed);
  await execa('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', replayed], { reject: false });
  const [ours, theirs] = [await sbmReading(dir, image), await qemuReading(dir, replayed)];
  t.is(ours.length, theirs.length);
  t.true(ours.equals(theirs), 'byte for byte what qemu-img reads after replaying the log');
  t.is(ours.readUInt16LE(510), 0xaa55, 'an MBR disk');
  t.deepEqual([ours[446 + 4], ours[462 + 4]], [0x83, 0x83], 'two Linux partitions, as DiscUtils expects of it');
  t.true((await readFile(image)).equals(original), 'sbm never writes the file');
});

test('damage anywhere in the log of the Windows VHDX opens (replayed or read as it stands) or fails with one line', async (t) => {
  const dir = await tempDir(t);
  const original = gunzipSync(await readFile(join(FIXTURES, 'vhdx-log-replay.vhdx.gz')));
  const image = join(dir, 'damaged.vhdx');
  // The log is the 1 MiB at 1 MiB; its entries sit in its first 64 KiB.
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.nat(64 * 1024 - 1), fc.nat(255)), { minLength: 1, maxLength: 8 }), async (damage) => {
      const bytes = Buffer.from(original);
      for (const [offset, value] of damage) bytes[1024 * 1024 + offset] = value;
      await writeFile(image, bytes);
      try {
        const disk = await openVhdx(image);
        try {
          await disk.read(0, 1024 * 1024);
        } finally {
          await disk.close();
        }
      } catch (error) {
        if (!(error instanceof SbmError) || error.message.includes('\n')) throw error;
      }
    }),
    { numRuns: 60 },
  );
  t.pass();
});
