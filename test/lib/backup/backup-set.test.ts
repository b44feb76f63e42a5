// What a backup run and thinning may remove from a destination: only what sbm can prove it made.

import test from 'ava';
import { mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { backupSnapshotName, bundleBackupSource, isBackupSnapshotName } from '../../../lib/backup/bundle-backup-source.js';
import { IN_PROGRESS_MARKER, claimBuildFolder, discardInterrupted, listBackups } from '../../../lib/backup/backup-set.js';
import { createBackup } from '../../../lib/backup/create-backup.js';
import { thinBackups } from '../../../lib/backup/thin-backups.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import type { SbmWarning } from '../../../lib/warnings.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';

const MIB = 1024 * 1024;

async function userFolder(path: string): Promise<string> {
  await mkdir(path, { recursive: true });
  const file = join(path, 'thesis.txt');
  await writeFile(file, 'years of work');
  return file;
}

test('a backup removes only in-progress folders carrying its marker; others stay, each named in a warning', async (t) => {
  const dir = await tempDir(t);
  const bundle = await SparseBundle.create(join(dir, 'project.sparsebundle'), { sizeBytes: 8 * MIB, bandSizeBytes: MIB });
  t.teardown(() => bundle.close());
  await bundle.write(0, seededBytes(MIB, 1));
  const setDir = join(dir, 'dest', 'project');
  // A destination folder that was never a backup set, holding the user's own folders.
  const kept = [
    await userFolder(join(setDir, 'project.inProgress')),
    await userFolder(join(setDir, '.deleting-2026-01-01-000000.sparsebundle')),
    // sbm's marker file name, but not sbm's marker (and one naming another folder).
    await userFolder(join(setDir, 'fake.inProgress')),
    await userFolder(join(setDir, 'copied.inProgress')),
  ];
  await mkdir(join(setDir, 'fake.inProgress', '.sbm'));
  await writeFile(join(setDir, 'fake.inProgress', IN_PROGRESS_MARKER), '{"note":"mine"}');
  // An interrupted run's build: claimed by sbm, then abandoned.
  const interrupted = await claimBuildFolder(setDir, '2026-02-02-020202', { source: bundle.path, startedAt: new Date() });
  await mkdir(join(interrupted, 'bands'));
  await writeFile(join(interrupted, 'bands', '0'), 'partial');
  await mkdir(join(setDir, 'copied.inProgress', '.sbm'));
  await writeFile(join(setDir, 'copied.inProgress', IN_PROGRESS_MARKER), await readFile(join(interrupted, IN_PROGRESS_MARKER)));

  const warnings: SbmWarning[] = [];
  const result = await createBackup(bundleBackupSource(bundle), join(dir, 'dest'), { onWarning: (w) => warnings.push(w) });
  for (const file of kept) t.is(await readFile(file, 'utf8'), 'years of work', `${file} is untouched`);
  await t.throwsAsync(stat(interrupted), { code: 'ENOENT' }, 'the marked build of an interrupted run is removed');
  t.deepEqual(warnings.filter((w) => w.code === 'SBM_BACKUP_DISCARDED').length, 1);
  const leftAlone = warnings
    .filter((w) => w.code === 'SBM_BACKUP_LEFT_ALONE')
    .map((w) => w.data?.path)
    .sort();
  t.deepEqual(
    leftAlone,
    ['.deleting-2026-01-01-000000.sparsebundle', 'copied.inProgress', 'fake.inProgress', 'project.inProgress'].map((name) =>
      join(setDir, name),
    ),
  );
  t.deepEqual(
    (await listBackups(setDir)).map((backup) => backup.path),
    [result.path],
  );
  t.false((await readdir(result.path)).some((name) => name.endsWith('.inProgress')));
});

test('folders with backup names but no manifest are not backups: never listed, never thinned', async (t) => {
  const dir = await tempDir(t);
  const setDir = join(dir, 'set');
  const lookalikes = [
    await userFolder(join(setDir, '2020-01-01-000000.sparsebundle')),
    await userFolder(join(setDir, '2020-01-02-000000.sparsebundle')),
  ];
  t.deepEqual(await listBackups(setDir), []);
  const thinned = await thinBackups(setDir, { keepHourly: 1, maxBytes: 0 });
  t.deepEqual(thinned.deleted, []);
  for (const file of lookalikes) t.is(await readFile(file, 'utf8'), 'years of work');
  // A look-alike of a half-deleted backup (no manifest) survives the cleanup a backup run does, too.
  const deleting = await userFolder(join(setDir, '.deleting-2020-01-03-000000.sparsebundle'));
  t.deepEqual(await discardInterrupted(setDir), { removed: [], leftAlone: ['.deleting-2020-01-03-000000.sparsebundle'] });
  t.is(await readFile(deleting, 'utf8'), 'years of work');
});

test('a backup destination inside the source bundle is refused before anything is created', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 8 * MIB, bandSizeBytes: MIB });
  t.teardown(() => bundle.close());
  await symlink(path, join(dir, 'alias'));
  const before = (await readdir(path)).sort();
  for (const dest of [path, join(path, 'backups'), join(path, '.sbm', 'backups'), join(dir, 'alias', 'backups')]) {
    await t.throwsAsync(createBackup(bundleBackupSource(bundle), dest), { code: 'SBM_OUTPUT_INSIDE_INPUT' }, dest);
  }
  t.deepEqual((await readdir(path)).sort(), before);
});

test('backup snapshot names carry check digits; names a person picks do not pass', (t) => {
  const name = backupSnapshotName();
  t.regex(name, /^sbm-backup-\d{13}-[0-9a-f]{12}-[0-9a-f]{8}$/);
  t.true(isBackupSnapshotName(name));
  t.true(isBackupSnapshotName(backupSnapshotName(1_700_000_000_000, '0123456789ab')));
  for (const chosen of ['sbm-backup-1-abcdef', 'sbm-backup-before-upgrade', 'sbm-backup-1700000000000-0123456789ab-00000000', `${name}x`]) {
    t.false(isBackupSnapshotName(chosen), chosen);
  }
});
