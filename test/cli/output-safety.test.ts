// Outputs never land inside (or on, or around) their inputs, backup runs leave other people's
// folders alone, and thin refuses what is not a backup set: through the built binary.

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listBackups } from '../../lib/backup/backup-set.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { ERROR_CODES } from '../../lib/errors.js';
import { runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

async function bundleWithData(path: string, bands: number): Promise<void> {
  const bundle = await SparseBundle.create(path, { sizeBytes: (bands + 4) * MIB, bandSizeBytes: MIB });
  for (let band = 0; band < bands; band++) await bundle.write(band * MIB, randomBytes(MIB));
  await bundle.close();
}

/** Every file under `path` with its bytes, to show nothing in it changed. */
async function snapshotTree(path: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(path, { recursive: true, withFileTypes: true })) {
    const full = join(entry.parentPath, entry.name);
    if (entry.isFile())
      files.set(
        full,
        createHash('sha256')
          .update(await readFile(full))
          .digest('hex'),
      );
    else files.set(full, entry.isDirectory() ? 'dir' : 'other');
  }
  return files;
}

function refusedInside(t: import('ava').ExecutionContext, result: { exitCode?: number; stderr: string }, what: string): void {
  t.is(result.exitCode, ERROR_CODES.SBM_OUTPUT_INSIDE_INPUT.exitCode, `${what}: ${result.stderr}`);
  t.regex(result.stderr, /^sbm: SBM_OUTPUT_INSIDE_INPUT: [^\n]*\n$/, what);
}

test('export, convert and restore refuse outputs inside, equal to or holding an input, --force or not', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await bundleWithData(disk, 8);
  await symlink(disk, join(dir, 'alias'));
  const before = await snapshotTree(disk);

  // export: a band of its own input (the finding), the input itself, inside it through a symlink.
  for (const out of [join(disk, 'bands', '7'), disk, join(dir, 'alias', 'bands', '3'), join(disk, '.sbm', 'copy.raw')]) {
    for (const force of [[], ['--force']])
      refusedInside(t, await runSbm(['export', disk, out, '--format', 'raw', ...force]), `export to ${out} ${force}`);
  }
  t.deepEqual(await snapshotTree(disk), before, 'the exports changed nothing in the bundle');
  // convert: the bundle into itself, and a raw image onto or around itself.
  refusedInside(t, await runSbm(['convert', disk, join(disk, 'inner.sparsebundle'), '--force']), 'convert into the input bundle');
  const images = join(dir, 'images');
  await mkdir(images);
  const raw = join(images, 'disk.raw');
  const rawBytes = randomBytes(2 * MIB);
  await writeFile(raw, rawBytes);
  refusedInside(t, await runSbm(['convert', raw, raw, '--force']), 'convert onto the input file');
  refusedInside(t, await runSbm(['convert', raw, images, '--force']), 'convert over the folder holding the input');
  t.true((await readFile(raw)).equals(rawBytes));

  // restore: into the backup it reads (as a bundle, as an image), over it in place.
  t.is((await runSbm(['backup', disk, join(dir, 'dest')])).exitCode, 0);
  const [backup] = await listBackups(join(dir, 'dest', 'vm'));
  const backupPath = backup?.path ?? '';
  const backupBefore = await snapshotTree(backupPath);
  refusedInside(t, await runSbm(['restore', backupPath, join(backupPath, 'restored.sparsebundle')]), 'restore into the backup');
  refusedInside(
    t,
    await runSbm(['restore', backupPath, join(backupPath, 'bands', '0'), '--to', 'raw', '--force']),
    'restore over a band of the backup',
  );
  refusedInside(t, await runSbm(['restore', backupPath, backupPath, '--force']), 'restore over the backup itself');
  refusedInside(
    t,
    await runSbm(['restore', backupPath, join(dir, 'dest'), '--to', 'raw', '--force']),
    'restore over the folder holding the backup',
  );
  t.deepEqual(await snapshotTree(backupPath), backupBefore, 'the backup is unchanged');

  // backup: a destination inside the source bundle; nothing is created there.
  const beforeBackup = await snapshotTree(disk);
  refusedInside(t, await runSbm(['backup', disk, join(disk, '.sbm', 'backups')]), 'backup into the source');
  t.deepEqual(await snapshotTree(disk), beforeBackup, 'the source bundle is unchanged');

  // Beside the input is fine.
  t.is((await runSbm(['export', disk, join(dir, 'vm.raw'), '--format', 'raw'])).exitCode, 0);
  t.is((await runSbm(['convert', raw])).exitCode, 0);
});

test('the files of a multi-file VMDK are inputs too: an output onto its extent is refused', async (t) => {
  const dir = await tempDir(t);
  const extent = join(dir, 'disk-flat.vmdk');
  const data = randomBytes(2 * MIB);
  await writeFile(extent, data);
  const descriptor = join(dir, 'disk.vmdk');
  await writeFile(
    descriptor,
    [
      '# Disk DescriptorFile',
      'version=1',
      'CID=fffffffe',
      'parentCID=ffffffff',
      'createType="monolithicFlat"',
      'RW 4096 FLAT "disk-flat.vmdk" 0',
      '',
    ].join('\n'),
  );
  refusedInside(t, await runSbm(['export', descriptor, extent, '--format', 'raw', '--force']), 'export onto the extent');
  refusedInside(t, await runSbm(['convert', descriptor, extent, '--force']), 'convert onto the extent');
  t.true((await readFile(extent)).equals(data), 'the extent is unchanged');
  const converted = await runSbm(['convert', descriptor]);
  t.is(converted.exitCode, 0, converted.stderr);
});

test("backup leaves a user's project.inProgress folder alone and names it in a warning", async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'project.sparsebundle');
  await bundleWithData(disk, 2);
  // A destination that was never a backup set, with a folder of the user's that ends in .inProgress.
  const mine = join(dir, 'dest', 'project', 'project.inProgress');
  await mkdir(join(mine, 'src'), { recursive: true });
  await writeFile(join(mine, 'src', 'main.c'), 'int main(void) { return 0; }\n');
  const before = await snapshotTree(mine);
  const result = await runSbm(['backup', disk, join(dir, 'dest')]);
  t.is(result.exitCode, 0, result.stderr);
  t.true(result.stderr.includes(`sbm: warning SBM_BACKUP_LEFT_ALONE: left ${mine} alone`), result.stderr);
  t.deepEqual(await snapshotTree(mine), before);
  t.is((await listBackups(join(dir, 'dest', 'project'))).length, 1);
  // --strict makes leaving it a failure, still without touching it.
  const strict = await runSbm(['backup', disk, join(dir, 'dest'), '--strict']);
  t.is(strict.exitCode, ERROR_CODES.SBM_STRICT.exitCode);
  t.deepEqual(await snapshotTree(mine), before);
});

test('thin refuses a folder that is not a backup set, even with backup-like names, and creates nothing in it', async (t) => {
  const dir = await tempDir(t);
  const plain = join(dir, 'plain');
  await mkdir(join(plain, 'photos'), { recursive: true });
  await writeFile(join(plain, 'photos', 'a.jpg'), 'jpeg');
  const lookalike = join(dir, 'lookalike');
  for (const name of ['2024-01-01-000000.sparsebundle', '2024-06-01-120000.sparsebundle']) {
    await mkdir(join(lookalike, name, 'bands'), { recursive: true });
    await writeFile(join(lookalike, name, 'notes.txt'), name);
  }
  // One level down, as a destination holding sets would be.
  const nested = join(dir, 'nested');
  await mkdir(join(nested, 'vm', '2024-01-01-000000.sparsebundle'), { recursive: true });
  for (const path of [plain, lookalike, nested]) {
    const before = await snapshotTree(path);
    const result = await runSbm(['thin', path, '--keep-daily', '1', '--max-bytes', '0']);
    t.is(result.exitCode, ERROR_CODES.SBM_NOT_A_BACKUP.exitCode, `${path}: ${result.stderr}`);
    t.regex(result.stderr, /^sbm: SBM_NOT_A_BACKUP: [^\n]*\n$/);
    t.deepEqual(await snapshotTree(path), before, `${path}: nothing created or removed (no .lock)`);
  }
  await t.throwsAsync(stat(join(lookalike, '.lock')), { code: 'ENOENT' });
});
