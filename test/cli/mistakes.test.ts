// Mistakes that used to lose or change data, through the built CLI: bad option values that
// deleted backups or failed after a backup was written, `thin --dry-run`, outputs named like
// another format, `sbm create` naming, and backups mounted read-only.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { listBackups } from '../../lib/backup/backup-set.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

async function bundleWithData(path: string, bands: number): Promise<void> {
  const bundle = await SparseBundle.create(path, { sizeBytes: (bands + 4) * MIB, bandSizeBytes: MIB });
  for (let band = 0; band < bands; band++) await bundle.write(band * MIB, randomBytes(MIB));
  await bundle.close();
}

/** Every name under `dir`, recursively, with sizes: what "nothing was touched" compares. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    out.push(`${path.slice(dir.length)} ${entry.isDirectory() ? 'dir' : (await lstat(path)).size}`);
  }
  return out.sort();
}

/** A set of three backups of one disk (they share a second or two; thinning by day sees one bucket). */
async function backupSet(dir: string): Promise<{ disk: string; dest: string; set: string }> {
  const disk = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'dest');
  await bundleWithData(disk, 3);
  for (let run = 0; run < 3; run++) {
    const result = await runSbm(['backup', disk, dest]);
    if (result.exitCode !== 0) throw new Error(result.stderr);
  }
  return { disk, dest, set: join(dest, 'vm') };
}

function assertUsage(t: import('ava').ExecutionContext, result: { exitCode?: number; stderr: unknown }, label: string): void {
  t.is(result.exitCode, 2, `${label}: ${String(result.stderr)}`);
  t.regex(String(result.stderr), /^sbm: SBM_USAGE: /, label);
}

test('thin refuses every bad count or size with SBM_USAGE before touching the set', async (t) => {
  const dir = await tempDir(t);
  const { set } = await backupSet(dir);
  const before = await tree(set);
  for (const bad of [
    ['--keep-daily', 'abc'],
    ['--keep-daily', '-1'],
    ['--keep-daily=-1'],
    ['--keep-daily', '0'],
    ['--keep-hourly', '1.5'],
    ['--keep-weekly', '1e3'],
    ['--keep-weekly', ''],
    ['--keep-daily'],
    ['--keep-daily', '1', '--keep-daily', '2'],
    ['--max-bytes', 'lots'],
    ['--max-bytes', '-5G'],
    ['--keep-daily', '99999999999999999999'],
  ]) {
    assertUsage(t, await runSbm(['thin', set, ...bad]), bad.join(' '));
    t.deepEqual(await tree(set), before, `${bad.join(' ')}: the set is untouched`);
  }
  t.is((await listBackups(set)).length, 3);
});

test('thin --dry-run prints what it would delete (text and --json) and deletes nothing', async (t) => {
  const dir = await tempDir(t);
  const { set } = await backupSet(dir);
  const names = (await listBackups(set)).map((backup) => backup.name);
  const before = await tree(set);
  const json = await runSbm(['thin', set, '--keep-daily', '1', '--dry-run', '--json']);
  t.is(json.exitCode, 0, json.stderr);
  const [result] = (JSON.parse(json.stdout) as { sets: Array<{ set: string; dryRun: boolean; deleted: string[]; kept: string[] }> }).sets;
  t.like(result, { set, dryRun: true, deleted: names.slice(0, 2), kept: names.slice(2) });
  const text = await runSbm(['thin', set, '--keep-daily', '1', '--dry-run']);
  t.is(text.exitCode, 0, text.stderr);
  t.regex(text.stdout, /would delete 2, kept 1/);
  for (const name of names.slice(0, 2)) t.true(text.stdout.includes(`would delete ${name}`), name);
  t.deepEqual(await tree(set), before, 'nothing deleted');
  const real = await runSbm(['thin', set, '--keep-daily', '1', '--json']);
  t.like(JSON.parse(real.stdout).sets[0], { dryRun: false, deleted: names.slice(0, 2) });
  t.deepEqual(
    (await listBackups(set)).map((backup) => backup.name),
    names.slice(2),
  );
});

test('backup checks every option before it writes anything (lean fast path and yargs alike)', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await bundleWithData(disk, 2);
  const diskBefore = await tree(disk);
  const dest = join(dir, 'dest');
  // The first list is plain enough for the lean parser; the second ("-1") goes through yargs.
  for (const bad of [['--max-bytes', 'lots'], ['--keep-hourly', '-1'], ['--keep-daily', 'x', '--json'], ['--keep-weekly=0']]) {
    assertUsage(t, await runSbm(['backup', disk, dest, ...bad]), bad.join(' '));
    t.false(
      await stat(dest).then(
        () => true,
        () => false,
      ),
      `${bad.join(' ')}: no backup written`,
    );
    t.deepEqual(await tree(disk), diskBefore, `${bad.join(' ')}: the disk is untouched`);
  }
  const good = await runSbm(['backup', disk, dest, '--max-bytes', '1G', '--keep-daily', '7']);
  t.is(good.exitCode, 0, good.stderr);
});

test('numeric options of every command are checked: sizes, counts and ports', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await bundleWithData(disk, 1);
  const before = await tree(dir);
  for (const args of [
    ['create', join(dir, 'a.sparsebundle'), '--size', 'abc'],
    ['create', join(dir, 'a.sparsebundle'), '--size', '0'],
    ['create', join(dir, 'a.sparsebundle'), '--size', '8M', '--band-size', 'big'],
    ['convert', disk, join(dir, 'c.sparsebundle'), '--band-size', 'x'],
    ['convert', disk, join(dir, 'c.sparsebundle'), '--band-size', ''],
    ['resize', disk, '--size', 'huge'],
    ['resize', disk, '--size', '-1'],
    ['mount', disk, '--port', 'abc'],
    ['mount', disk, '--port', '70000'],
    ['mount', disk, '--port', '-1'],
    ['mount', disk, '--port', '80.5'],
  ]) {
    assertUsage(t, await runSbm(args), args.join(' '));
  }
  t.deepEqual(await tree(dir), before, 'nothing was created or changed');
});

test('an output named like another image format is written in that format or refused with a hint', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await bundleWithData(disk, 2);
  const raw = join(dir, 'disk.raw');
  t.is((await runSbm(['export', disk, raw, '--format', 'raw'])).exitCode, 0);
  const before = await tree(dir);
  for (const name of ['out.vmdk', 'out.img', 'OUT.QCOW2', 'out.vdi', 'out.vhdx', 'out.ova', 'out.raw']) {
    const result = await runSbm(['convert', raw, join(dir, name), '--no-progress']);
    assertUsage(t, result, `convert to ${name}`);
    t.regex(result.stderr, /sbm export/, `${name}: the hint names sbm export`);
  }
  t.deepEqual(await tree(dir), before, 'convert made no folder named like an image');

  const backup = JSON.parse((await runSbm(['backup', disk, join(dir, 'dest'), '--json'])).stdout).path as string;
  const vmdk = join(dir, 'new.vmdk');
  const restored = await runSbm(['restore', backup, vmdk, '--json']);
  t.is(restored.exitCode, 0, restored.stderr);
  t.like(JSON.parse(restored.stdout), { format: 'vmdk' });
  t.true((await lstat(vmdk)).isFile(), 'new.vmdk is a file');
  t.is((await readFile(vmdk)).subarray(0, 4).toString('latin1'), 'KDMV');
  const img = join(dir, 'new.img');
  t.is((await runSbm(['restore', backup, img])).exitCode, 0);
  t.true((await readFile(img)).equals(await readFile(raw)), 'new.img is the raw disk');
  // new.ova: an OVA package (descriptor first), as export writes it.
  const ova = join(dir, 'new.ova');
  const packaged = await runSbm(['restore', backup, ova, '--json']);
  t.is(packaged.exitCode, 0, packaged.stderr);
  t.like(JSON.parse(packaged.stdout), { format: 'ova' });
  t.regex((await readFile(ova)).subarray(0, 100).toString('latin1'), /^new\.ovf\0/, 'the .ovf is the first tar member');
});

test('export without --format writes the format the output name says, or asks for --format', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await bundleWithData(disk, 1);
  const vmdk = await runSbm(['export', disk, join(dir, 'out.vmdk'), '--json', '--no-progress']);
  t.is(vmdk.exitCode, 0, vmdk.stderr);
  t.like(JSON.parse(vmdk.stdout), { format: 'vmdk' });
  t.is((await readFile(join(dir, 'out.vmdk'))).subarray(0, 4).toString('latin1'), 'KDMV');
  const img = await runSbm(['export', disk, join(dir, 'out.img'), '--json', '--no-progress']);
  t.like(JSON.parse(img.stdout), { format: 'raw' });
  const ova = await runSbm(['export', disk, join(dir, 'out.ova'), '--json', '--no-progress']);
  t.like(JSON.parse(ova.stdout), { format: 'ova' });
  const refused = await runSbm(['export', disk, join(dir, 'out.bin')]);
  assertUsage(t, refused, 'export to out.bin');
  t.regex(refused.stderr, /--format/);
  t.deepEqual((await readdir(dir)).sort(), ['out.img', 'out.ova', 'out.vmdk', 'vm.sparsebundle']);
});

test('sbm create z makes z.sparsebundle, as hdiutil does; z.vmdk is refused', async (t) => {
  const dir = await tempDir(t);
  const created = await runSbm(['create', join(dir, 'z'), '--size', '8M', '--json']);
  t.is(created.exitCode, 0, created.stderr);
  t.is(JSON.parse(created.stdout).path, join(dir, 'z.sparsebundle'));
  t.true((await readdir(join(dir, 'z.sparsebundle'))).includes('Info.plist'));
  const again = await runSbm(['create', join(dir, 'z'), '--size', '8M']);
  t.is(again.exitCode, 1, 'z.sparsebundle exists now');
  const vmdk = await runSbm(['create', join(dir, 'y.vmdk'), '--size', '8M']);
  assertUsage(t, vmdk, 'create y.vmdk');
  t.regex(vmdk.stderr, /sbm export/);
  t.deepEqual(await readdir(dir), ['z.sparsebundle']);
});

test('restore to NAME.raw without --to writes a raw file, not a bundle folder named NAME.raw', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await bundleWithData(disk, 1);
  const backup = JSON.parse((await runSbm(['backup', disk, join(dir, 'dest'), '--json'])).stdout).path as string;
  await mkdir(join(dir, 'out'));
  const result = await runSbm(['restore', backup, join(dir, 'out', 'restored.raw')]);
  t.is(result.exitCode, 0, result.stderr);
  t.regex(result.stdout, /\(raw\)/);
  t.true((await lstat(join(dir, 'out', 'restored.raw'))).isFile());
});
