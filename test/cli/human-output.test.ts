// Human output reads as text: `sbm info` of a VMDK chain shows extents and layers as lines, not
// JSON; counts agree with their noun ("1 band").

import test from 'ava';
import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { counted } from '../../cli/plural.js';
import { requireTool, runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

test('info of a VMDK chain prints extents and layers as readable lines', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const base = join(dir, 'base.vmdk');
  const child = join(dir, 'child.vmdk');
  await execa('qemu-img', ['create', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', base, '5G']);
  await execa('qemu-img', ['create', '-f', 'vmdk', '-b', base, '-F', 'vmdk', child]);
  const result = await runSbm(['info', child]);
  t.is(result.exitCode, 0, result.stderr);
  t.notRegex(result.stdout, /[{}"]/, 'no JSON in the human form');
  t.notRegex(result.stdout, / +\n/, 'no trailing spaces');
  t.regex(result.stdout, /\nextents:\n {4}\S*child\.vmdk: [^\n]*SPARSE, size 5\.00 GiB[^\n]*grain size 128 sectors/);
  t.regex(
    result.stdout,
    /\nchain:\n {4}1\. \S*child\.vmdk: monolithicSparse, cid [0-9a-f]+, parent cid [0-9a-f]+[^\n]*\n {4}2\. \S*base\.vmdk: /,
  );
  const parent = await runSbm(['info', base]);
  t.regex(
    parent.stdout,
    /\nextents:\n {4}1\. \S*base-s001\.vmdk: [^\n]*size 2\.00 GiB[^\n]*\n {4}2\. \S*base-s002\.vmdk: [^\n]*\n {4}3\. \S*base-s003\.vmdk/,
  );
});

test('counts agree with their noun', async (t) => {
  t.is(counted(1, 'band'), '1 band');
  t.is(counted(0, 'band'), '0 bands');
  t.is(counted(2, 'damaged band'), '2 damaged bands');
  const dir = await tempDir(t);
  const raw = join(dir, 'one.raw');
  await writeFile(raw, Buffer.alloc(MIB, 7));
  const bundle = join(dir, 'one.sparsebundle');
  const converted = await runSbm(['convert', raw, bundle, '--band-size', '1M']);
  t.regex(converted.stdout, /: 1\.00 MiB virtual, 1 band, /);
  t.regex((await runSbm(['check', bundle])).stdout, /ok \(1 band checked\)/);
  t.regex((await runSbm(['create', join(dir, 'small'), '--size', '1M', '--band-size', '1M'])).stdout, / in 1 band of 1\.00 MiB/);
  const backup = await runSbm(['backup', bundle, join(dir, 'dest')]);
  t.regex(backup.stdout, /: 1 band copied, 0 linked/);
  t.regex((await runSbm(['verify', join(dir, 'dest')])).stdout, /^ok: 1 backup, 1 band verified/);
});
