// The CLI reaches the VMDK adapter through the registries: convert, info and export work on VMDK
// input, and damaged input fails with one line, a non-zero exit and no output left behind.
// Needs `npx tsc -p .` first (runs dist/cli/sbm.js).

import test from 'ava';
import { execa } from 'execa';
import { readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { MiB, makeSourceRaw, qemuImg, vmdkinfo } from './vmdk-test-kit.js';

async function sample(dir: string, subformat: string): Promise<{ source: string; disk: string }> {
  const source = join(dir, 'source.raw');
  await makeSourceRaw(source, 40 * MiB, [
    { offset: MiB, length: 3 * MiB, seed: 61 },
    { offset: 8 * MiB - 4096, length: 8192, seed: 62 },
    { offset: 33 * MiB, length: MiB, seed: 63 },
  ]);
  const disk = join(dir, 'vm.vmdk');
  await qemuImg(['convert', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${subformat}`, source, disk]);
  return { source, disk };
}

for (const subformat of ['monolithicSparse', 'streamOptimized']) {
  test(`sbm convert + export round-trips a ${subformat} VMDK`, async (t) => {
    await requireTool(t, 'qemu-img');
    await requireTool(t, 'vmdkinfo');
    const dir = await tempDir(t);
    const { source, disk } = await sample(dir, subformat);
    const bundle = join(dir, 'vm.sparsebundle');
    const convert = await runSbm(['convert', disk, bundle, '--json', '--no-progress']);
    t.is(convert.exitCode, 0, convert.stderr);
    t.is(JSON.parse(convert.stdout).format, 'vmdk');
    const bands = await readdir(join(bundle, 'bands'));
    t.deepEqual(bands.sort(), ['0', '1', '4'], 'empty bands create no file');
    const raw = join(dir, 'back.raw');
    const toRaw = await runSbm(['export', bundle, raw, '--format', 'raw']);
    t.is(toRaw.exitCode, 0, toRaw.stderr);
    const same = await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', source, raw], { reject: false });
    t.is(same.exitCode, 0);
    const back = join(dir, 'back.vmdk');
    const toVmdk = await runSbm(['export', bundle, back, '--format', 'vmdk', '--subformat', subformat]);
    t.is(toVmdk.exitCode, 0, toVmdk.stderr);
    const check = await execa('qemu-img', ['check', '-q', '-f', 'vmdk', back], { reject: false });
    t.is(check.exitCode, 0, check.stdout);
    const equal = await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'vmdk', source, back], { reject: false });
    t.is(equal.exitCode, 0);
    const info = await runSbm(['info', disk, '--json']);
    t.is(info.exitCode, 0, info.stderr);
    const facts = JSON.parse(info.stdout);
    const oracle = await vmdkinfo(disk);
    t.is(facts.capacity, oracle.mediaSize);
    t.is(facts.extents.length, oracle.extentCount);
    t.is(facts.createType, subformat);
  });
}

test('a truncated VMDK fails with one line, exit 4 and no bundle left behind', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const { disk } = await sample(dir, 'monolithicSparse');
  await truncate(disk, (await stat(disk)).size - 128 * 1024);
  const bundle = join(dir, 'out.sparsebundle');
  const result = await runSbm(['convert', disk, bundle, '--no-progress']);
  t.is(result.exitCode, 4);
  t.regex(result.stderr, /SBM_CORRUPT: .*vm\.vmdk: grain \d+ points to sector \d+, past end of file/);
  t.is(result.stderr.trim().split('\n').length, 1, result.stderr);
  t.deepEqual((await readdir(dir)).sort(), ['source.raw', 'vm.vmdk']);
});
