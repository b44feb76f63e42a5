// VHDX files written by Windows itself (test/fixtures/hyperv/, sources in test/fixtures/README.md):
// a dynamic disk with every common block state, and a disk whose log still holds changes. sbm
// must read the first as qemu-img does, and refuse the second as qemu-img does until the log is
// replayed (README: a non-empty log is refused, not replayed).

import test from 'ava';
import { execa } from 'execa';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import Bunzip from 'seek-bzip';
import { REPO_ROOT, requireTool, runSbm, tempDir } from '../../helpers/tools.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'hyperv');

/** sbm's reading of `image` (convert, then export raw) and qemu-img's, as bytes. */
async function bothReadings(dir: string, image: string): Promise<[Buffer, Buffer]> {
  const bundle = join(dir, 'disk.sparsebundle');
  const converted = await runSbm(['convert', image, bundle, '--force', '--no-progress']);
  if (converted.exitCode !== 0) throw new Error(converted.stderr);
  const ours = join(dir, 'sbm.raw');
  const exported = await runSbm(['export', bundle, ours, '--format', 'raw', '--force']);
  if (exported.exitCode !== 0) throw new Error(exported.stderr);
  const theirs = join(dir, 'qemu.raw');
  await execa('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', image, theirs]);
  return [await readFile(ours), await readFile(theirs)];
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

  const [ours, theirs] = await bothReadings(dir, image);
  t.is(ours.length, theirs.length);
  t.true(ours.equals(theirs), 'byte for byte what qemu-img reads');
  t.is(ours.readUInt16LE(510), 0xaa55, 'an MBR disk');
  t.is(ours[446 + 4], 0x0b, 'its partition is FAT32');
});

test('a VHDX whose log Windows left unreplayed is refused as qemu-img refuses it; once replayed, both read it alike', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const image = join(dir, 'vhdx-log-replay.vhdx');
  await writeFile(image, gunzipSync(await readFile(join(FIXTURES, 'vhdx-log-replay.vhdx.gz'))));

  const qemu = await execa('qemu-img', ['info', image], { reject: false });
  t.not(qemu.exitCode, 0);
  t.regex(qemu.stderr, /log that needs to be replayed/);
  const bundle = join(dir, 'disk.sparsebundle');
  const refused = await runSbm(['convert', image, bundle, '--no-progress']);
  t.is(refused.exitCode, 4);
  t.regex(refused.stderr, /^sbm: SBM_UNSUPPORTED: .*vhdx-log-replay\.vhdx: the VHDX log holds changes that must be replayed first/);
  t.is(refused.stderr.trim().split('\n').length, 1, 'one line');
  t.false(existsSync(bundle), 'nothing written');

  const replayed = join(dir, 'replayed.vhdx');
  await copyFile(image, replayed);
  await execa('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', replayed], { reject: false });
  const [ours, theirs] = await bothReadings(dir, replayed);
  t.true(ours.equals(theirs), 'byte for byte what qemu-img reads');
  t.is(ours.readUInt16LE(510), 0xaa55, 'an MBR disk');
  t.deepEqual([ours[446 + 4], ours[462 + 4]], [0x83, 0x83], 'two Linux partitions, as DiscUtils expects of it');
});
