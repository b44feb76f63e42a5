// sbm export to an OVA: GNU tar lists the descriptor first, then the disk and the manifest;
// sha256sum agrees with the manifest; qemu-img checks the extracted streamOptimized disk and
// reads it equal to the bundle; the package converts back to the same disk.

import test from 'ava';
import { execa } from 'execa';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, runSbm, seededBytes, tempDir } from '../../helpers/tools.js';
import { MiB } from './ova-kit.js';

test('export --format ova: descriptor first, manifest true, qemu-img reads the disk equal to the bundle', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const raw = Buffer.alloc(24 * MiB);
  seededBytes(3 * MiB, 41).copy(raw, MiB);
  seededBytes(4096, 42).copy(raw, 20 * MiB);
  await writeFile(join(dir, 'disk.raw'), raw);
  const bundle = join(dir, 'vm.sparsebundle');
  t.is((await runSbm(['convert', join(dir, 'disk.raw'), bundle, '--no-progress'])).exitCode, 0);
  const ova = join(dir, 'appliance.ova');
  const exported = await runSbm(['export', bundle, ova, '--format', 'ova', '--json', '--no-progress']);
  t.is(exported.exitCode, 0, exported.stderr);
  t.like(JSON.parse(exported.stdout), { format: 'ova', output: ova });
  t.deepEqual((await readdir(dir)).sort(), ['appliance.ova', 'disk.raw', 'vm.sparsebundle'], 'no staging file is left');

  const listing = (await execa('tar', ['tf', ova])).stdout.split('\n');
  t.deepEqual(listing, ['appliance.ovf', 'appliance-disk1.vmdk', 'appliance.mf']);
  const unpacked = join(dir, 'unpacked');
  await execa('mkdir', [unpacked]);
  await execa('tar', ['xf', ova, '-C', unpacked]);
  const manifest = (await readFile(join(unpacked, 'appliance.mf'), 'utf8')).replace(/^SHA256\((.+)\)= (\w+)$/gm, '$2  $1');
  await execa('sha256sum', ['-c', '-'], { cwd: unpacked, input: manifest });
  const vmdk = join(unpacked, 'appliance-disk1.vmdk');
  const check = await execa('qemu-img', ['check', vmdk], { reject: false });
  t.is(check.exitCode, 0, check.stdout + check.stderr);
  t.regex((await execa('qemu-img', ['info', vmdk])).stdout, /create type: streamOptimized/);
  const compare = await execa('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', vmdk, join(dir, 'disk.raw')], { reject: false });
  t.is(compare.exitCode, 0, compare.stdout + compare.stderr);
  const ovf = await readFile(join(unpacked, 'appliance.ovf'), 'utf8');
  t.regex(ovf, /ovf:capacity="25165824"/);
  t.regex(ovf, /ovf:populatedSize="\d+"/);
  t.regex(ovf, /<rasd:HostResource>ovf:\/disk\/vmdisk1<\/rasd:HostResource>/);

  const back = join(dir, 'back.sparsebundle');
  t.is((await runSbm(['convert', ova, back, '--no-progress'])).exitCode, 0);
  t.is((await runSbm(['export', back, join(dir, 'back.raw'), '--format', 'raw'])).exitCode, 0);
  t.true((await readFile(join(dir, 'back.raw'))).equals(raw));
  const again = await runSbm(['export', bundle, ova]);
  t.is(again.exitCode, 1);
  t.regex(again.stderr, /SBM_EXISTS/);
});
