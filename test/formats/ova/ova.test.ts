// OVA and OVF packages read in place: GNU tar archives of qemu-img's streamOptimized VMDKs with
// hand-written descriptors (default, `ovf:` and an unusual prefix), chunked disks, several
// disks, the manifest checked before any disk byte is trusted, and every refusal leaving nothing.

import test from 'ava';
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool, runSbm, seededBytes, tempDir } from '../../helpers/tools.js';
import { MiB, manifest, ovfXml, streamVmdk, tarPackage, writeText } from './ova-kit.js';

async function rawDisk(dir: string, name: string, seed: number): Promise<string> {
  const raw = Buffer.alloc(16 * MiB);
  seededBytes(MiB, seed).copy(raw, 0);
  seededBytes(64 * 1024, seed + 1).copy(raw, 9 * MiB);
  const path = join(dir, name);
  await writeFile(path, raw);
  return path;
}

/** Converts `input` to a bundle and exports it raw; returns the bytes (or the failed run). */
async function readThrough(dir: string, input: string, extra: string[] = []) {
  const bundle = join(dir, `out-${Math.random().toString(16).slice(2)}.sparsebundle`);
  const converted = await runSbm(['convert', input, bundle, '--no-progress', ...extra]);
  if (converted.exitCode !== 0) return { converted, bundle, bytes: undefined };
  const flat = `${bundle}.raw`;
  const exported = await runSbm(['export', bundle, flat, '--format', 'raw']);
  return { converted, bundle, bytes: exported.exitCode === 0 ? await readFile(flat) : undefined };
}

test('an OVA made by GNU tar converts equal to the disk inside it, whatever the namespace prefix', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const raw = await rawDisk(dir, 'disk.raw', 7);
  await streamVmdk(dir, raw, 'disk1.vmdk');
  for (const prefix of ['', 'ovf', 'ns0']) {
    await writeText(dir, 'app.ovf', ovfXml([{ id: 'vmdisk1', href: 'disk1.vmdk', capacity: 16 * MiB }], prefix));
    await writeText(dir, 'app.mf', await manifest(dir, ['app.ovf', 'disk1.vmdk']));
    const ova = await tarPackage(dir, `app-${prefix}.ova`, ['app.ovf', 'disk1.vmdk', 'app.mf']);
    const { converted, bytes } = await readThrough(dir, ova);
    t.is(converted.exitCode, 0, converted.stderr);
    t.true(bytes?.equals(await readFile(raw)), `prefix "${prefix}"`);
  }
  const info = await runSbm(['info', join(dir, 'app-ns0.ova'), '--json']);
  t.is(info.exitCode, 0, info.stderr);
  const facts = JSON.parse(info.stdout);
  t.is(facts.format, 'ova');
  t.regex(JSON.stringify(facts), /SHA256 of the descriptor and the disk checked/);
  // The unpacked package reads the same: the .ovf named directly, or its folder.
  const byOvf = await readThrough(dir, join(dir, 'app.ovf'));
  t.is(byOvf.converted.exitCode, 0, byOvf.converted.stderr);
  t.true(byOvf.bytes?.equals(await readFile(raw)));
});

test('a chunked disk (ovf:chunkSize, SHA1 manifest per chunk) and a second disk picked with --disk 1', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const first = await rawDisk(dir, 'a.raw', 11);
  const second = await rawDisk(dir, 'b.raw', 23);
  await streamVmdk(dir, first, 'a.vmdk');
  const vmdk = await readFile(await streamVmdk(dir, second, 'b.vmdk'));
  const chunk = 256 * 1024;
  const chunks: string[] = [];
  for (let at = 0; at < vmdk.length; at += chunk) {
    const name = `b.vmdk.${String(chunks.length).padStart(9, '0')}`;
    await writeFile(join(dir, name), vmdk.subarray(at, at + chunk));
    chunks.push(name);
  }
  t.true(chunks.length > 1, 'the disk spans several chunks');
  const disks = [
    { id: 'd0', href: 'a.vmdk', capacity: 16 * MiB },
    { id: 'd1', href: 'b.vmdk', capacity: 16 * MiB, chunkSize: chunk },
  ];
  await writeText(dir, 'two.ovf', ovfXml(disks));
  await writeText(dir, 'two.mf', await manifest(dir, ['two.ovf', 'a.vmdk', ...chunks], 'sha1'));
  const ova = await tarPackage(dir, 'two.ova', ['two.ovf', 'a.vmdk', ...chunks, 'two.mf']);
  const info = await runSbm(['info', ova, '--json']);
  t.is(JSON.parse(info.stdout).disks.length, 2);
  const picked = await readThrough(dir, ova, ['--disk', '1']);
  t.is(picked.converted.exitCode, 0, picked.converted.stderr);
  t.true(picked.bytes?.equals(await readFile(second)), '--disk 1 is the chunked disk');
  const byDefault = await readThrough(dir, ova);
  t.true(byDefault.bytes?.equals(await readFile(first)), 'the first disk by default');
  const beyond = await runSbm(['convert', ova, join(dir, 'x.sparsebundle'), '--disk', '2']);
  t.is(beyond.exitCode, 2);
  t.regex(beyond.stderr, /^sbm: SBM_USAGE: --disk 2: .* has 2 disks/m);
});

test('a manifest mismatch, a missing member and a name outside the package are refused, nothing written', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const raw = await rawDisk(dir, 'disk.raw', 3);
  const vmdkPath = await streamVmdk(dir, raw, 'disk1.vmdk');
  await writeText(dir, 'app.ovf', ovfXml([{ id: 'd', href: 'disk1.vmdk', capacity: 16 * MiB }]));
  await writeText(dir, 'app.mf', await manifest(dir, ['app.ovf', 'disk1.vmdk']));
  const vmdk = await readFile(vmdkPath);
  vmdk[vmdk.length - 4096] = (vmdk[vmdk.length - 4096] ?? 0) ^ 0xff; // one byte flipped after the manifest was made
  await writeFile(vmdkPath, vmdk);
  const cases: Array<[string, RegExp, number]> = [];
  cases.push([
    await tarPackage(dir, 'damaged.ova', ['app.ovf', 'disk1.vmdk', 'app.mf']),
    /SBM_MANIFEST_MISMATCH: .*disk1\.vmdk does not match/,
    4,
  ]);
  await writeText(dir, 'app.ovf', ovfXml([{ id: 'd', href: 'missing.vmdk', capacity: 16 * MiB }]));
  cases.push([await tarPackage(dir, 'missing.ova', ['app.ovf', 'disk1.vmdk']), /SBM_NOT_FOUND: .*missing\.vmdk is not in the package/, 1]);
  await writeText(dir, 'app.ovf', ovfXml([{ id: 'd', href: '../disk1.vmdk', capacity: 16 * MiB }]));
  cases.push([await tarPackage(dir, 'outside.ova', ['app.ovf', 'disk1.vmdk']), /SBM_PATH_OUTSIDE/, 4]);
  for (const [ova, message, exitCode] of cases) {
    const bundle = join(dir, 'refused.sparsebundle');
    const run = await runSbm(['convert', ova, bundle]);
    t.is(run.exitCode, exitCode, ova);
    t.regex(run.stderr, message, ova);
    t.is(run.stderr.trim().split('\n').length, 1, 'one line');
    t.false(existsSync(bundle), 'nothing written');
  }
  // Without a manifest the disk is read; info says it was not checked.
  await rename(join(dir, 'app.mf'), join(dir, 'unused.mf'));
  await writeText(dir, 'app.ovf', ovfXml([{ id: 'd', href: 'disk1.vmdk', capacity: 16 * MiB }]));
  await writeFile(vmdkPath, await readFile(await streamVmdk(dir, raw, 'fresh.vmdk')));
  const plain = await tarPackage(dir, 'plain.ova', ['app.ovf', 'disk1.vmdk']);
  const info = await runSbm(['info', plain]);
  t.is(info.exitCode, 0, info.stderr);
  t.regex(info.stdout, /manifest:\s+none/);
});

test('gzip disk files (ovf:compression): convert and info stream them, compare stages; damaged or oversized: SBM_CORRUPT', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'gzip');
  const dir = await tempDir(t);
  const raw = await rawDisk(dir, 'disk.raw', 5);
  const vmdk = await readFile(await streamVmdk(dir, raw, 'disk1.vmdk'));
  await writeFile(join(dir, 'disk1.vmdk.gz'), (await execa('gzip', ['-c', join(dir, 'disk1.vmdk')], { encoding: 'buffer' })).stdout);
  await writeText(dir, 'app.ovf', ovfXml([{ id: 'd', href: 'disk1.vmdk.gz', capacity: 16 * MiB, compression: 'gzip' }]));
  await writeText(dir, 'app.mf', await manifest(dir, ['app.ovf', 'disk1.vmdk.gz']));
  const ova = await tarPackage(dir, 'gzip.ova', ['app.ovf', 'disk1.vmdk.gz', 'app.mf']);
  const before = await readdir(tmpdir());
  const { converted, bytes } = await readThrough(dir, ova);
  t.is(converted.exitCode, 0, converted.stderr);
  t.true(bytes?.equals(await readFile(raw)), 'the disk inside the compressed file');
  // No temporary copy: with no usable temporary folder, convert and info still work.
  const noTmp = { TMPDIR: join(dir, 'no-such-folder') };
  const streamed = join(dir, 'streamed.sparsebundle');
  const streamedRun = await runSbm(['convert', ova, streamed, '--no-progress'], { env: noTmp });
  t.is(streamedRun.exitCode, 0, streamedRun.stderr);
  t.is((await runSbm(['compare', streamed, raw])).exitCode, 0, 'streamed bundle equals the disk');
  const info = await runSbm(['info', ova, '--json'], { env: noTmp });
  t.is(info.exitCode, 0, info.stderr);
  const facts = JSON.parse(info.stdout);
  t.regex(facts.compression, new RegExp(`^gzip \\(${vmdk.length} bytes decompressed, read as a stream`));
  // Its grains: the 1 MiB and the 64 KiB of data (qemu-img's 64 KiB grains), as qemu-img's own map counts them.
  t.is(facts.allocatedBytes, MiB + 64 * 1024);
  // compare reads at random: it stages the disk (and leaves nothing behind).
  t.is((await runSbm(['compare', ova, raw])).exitCode, 0, 'the package compares equal to the disk');
  t.deepEqual(
    (await readdir(tmpdir())).filter((name) => name.startsWith('sbm-ova-') && !before.includes(name)),
    [],
    'no temporary copy is left behind',
  );

  // Damaged after the manifest was left out: gzip's own CRC-32 finds it.
  const gz = await readFile(join(dir, 'disk1.vmdk.gz'));
  gz.writeUInt8(gz.readUInt8(gz.length >> 1) ^ 0x55, gz.length >> 1);
  await writeFile(join(dir, 'disk1.vmdk.gz'), gz);
  const damaged = await tarPackage(dir, 'damaged-gzip.ova', ['app.ovf', 'disk1.vmdk.gz']);
  // A descriptor claiming a tiny disk: the file decompresses to far more than such a disk needs.
  await writeFile(join(dir, 'disk1.vmdk.gz'), (await execa('gzip', ['-c', join(dir, 'disk1.vmdk')], { encoding: 'buffer' })).stdout);
  await writeText(dir, 'app.ovf', ovfXml([{ id: 'd', href: 'disk1.vmdk.gz', capacity: 4096, compression: 'gzip' }]));
  await writeFile(join(dir, 'big.raw'), Buffer.alloc(0));
  await execa('truncate', ['-s', '80M', join(dir, 'big.raw')]);
  await execa('sh', ['-c', `gzip -c ${join(dir, 'big.raw')} > ${join(dir, 'disk1.vmdk.gz')}`]);
  const bomb = await tarPackage(dir, 'bomb.ova', ['app.ovf', 'disk1.vmdk.gz']);
  // The same, streamed: a real stream VMDK followed by 80 MiB of zeros.
  await execa('sh', ['-c', `cat ${join(dir, 'disk1.vmdk')} ${join(dir, 'big.raw')} | gzip -c > ${join(dir, 'disk1.vmdk.gz')}`]);
  const streamedBomb = await tarPackage(dir, 'streamed-bomb.ova', ['app.ovf', 'disk1.vmdk.gz']);
  // A wrong CRC-32 in the gzip trailer: every byte decompresses, the check at the end fails.
  const good = Buffer.from((await execa('gzip', ['-c', join(dir, 'disk1.vmdk')], { encoding: 'buffer' })).stdout);
  good.writeUInt8(good.readUInt8(good.length - 8) ^ 1, good.length - 8);
  await writeFile(join(dir, 'disk1.vmdk.gz'), good);
  await writeText(dir, 'app.ovf', ovfXml([{ id: 'd', href: 'disk1.vmdk.gz', capacity: 16 * MiB, compression: 'gzip' }]));
  const badCrc = await tarPackage(dir, 'bad-crc.ova', ['app.ovf', 'disk1.vmdk.gz']);
  for (const [package_, expected] of [
    // Streamed, the damage shows in whatever it reaches first: a grain that fails to inflate, or gzip's check.
    [damaged, /^sbm: SBM_CORRUPT: .*disk1\.vmdk\.gz(: grain at byte \d+ of the disk does not inflate| does not decompress as gzip)/],
    [bomb, /^sbm: SBM_CORRUPT: .*disk1\.vmdk\.gz decompresses to more than \d+ bytes/],
    [streamedBomb, /\nsbm: SBM_CORRUPT: .*disk1\.vmdk\.gz: decompresses to more than \d+ bytes/],
    [badCrc, /^sbm: SBM_CORRUPT: .*disk1\.vmdk\.gz does not decompress as gzip: incorrect data check/],
  ] as const) {
    const bundle = join(dir, 'refused.sparsebundle');
    const run = await runSbm(['convert', package_, bundle]);
    t.is(run.exitCode, 4, run.stderr);
    t.regex(run.stderr, expected);
    t.false(existsSync(bundle), 'nothing written');
  }
});
