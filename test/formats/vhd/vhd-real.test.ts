// A differencing VHD written by Windows (creator application "win ", version 10.0), from dfvfs's
// test data (test/fixtures/dfvfs/). Its parent (fat-parent.vhd, 4 MiB and more) is not in the
// fixtures, so a stand-in parent of zeros under the same name, carrying the unique id the child
// records, takes its place: sbm must then find it through Windows' relative locator (W2ru
// ".\fat-parent.vhd", backslash and all) and read the child's own sectors over zeros. qemu-img
// reads a differencing VHD's own blocks without its parent (as zeros elsewhere), so the two agree
// byte for byte exactly when sbm reads Windows' block allocation table and sector bitmaps right.

import test from 'ava';
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { REPO_ROOT, requireTool, runSbm, tempDir } from '../../helpers/tools.js';

const PARENT_ID = '5fa21a55f394aa4d99581951a67d5540';

/** A fixed VHD of zeros made by qemu-img, its footer's unique id set to `id` (checksum redone). */
async function standInParent(path: string, id: string): Promise<void> {
  await execa('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', path, '4M']);
  const bytes = await readFile(path);
  const footer = bytes.subarray(bytes.length - 512);
  Buffer.from(id, 'hex').copy(footer, 68);
  footer.writeUInt32BE(0, 64);
  let sum = 0;
  for (const byte of footer) sum += byte;
  footer.writeUInt32BE(~sum >>> 0, 64);
  await writeFile(path, bytes);
}

test("Windows' differencing VHD reads as qemu-img reads its own blocks; its locator and creator are honoured", async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const child = join(dir, 'fat-differential.vhd');
  await writeFile(child, gunzipSync(await readFile(join(REPO_ROOT, 'test', 'fixtures', 'dfvfs', 'fat-differential.vhd.gz'))));
  await standInParent(join(dir, 'fat-parent.vhd'), PARENT_ID);

  const info = await runSbm(['info', child, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  const details = JSON.parse(info.stdout) as Record<string, unknown>;
  t.is(details.subformat, 'differencing');
  t.is(details.creatorApplication, 'win ');
  t.is(details.sizeBytes, 4 * 1024 * 1024, 'Windows writes current_size; its CHS would give less');
  t.is(details.parent, join(dir, 'fat-parent.vhd'));
  t.deepEqual(details.warnings, []);

  const bundle = join(dir, 'disk.sparsebundle');
  const converted = await runSbm(['convert', child, bundle, '--no-progress']);
  t.is(converted.exitCode, 0, converted.stderr);
  const ours = join(dir, 'sbm.raw');
  const exported = await runSbm(['export', bundle, ours, '--format', 'raw']);
  t.is(exported.exitCode, 0, exported.stderr);
  const theirs = join(dir, 'qemu.raw');
  await execa('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', child, theirs]);
  const [a, b] = [await readFile(ours), await readFile(theirs)];
  t.is(a.length, b.length);
  t.true(a.equals(b));
  t.true(
    a.some((byte) => byte !== 0),
    'the child holds data (a FAT volume)',
  );
});
