// The backup guard: a folder with .sbm/manifest.json, any path inside it (as written or through a
// symlink), is a backup; the engine refuses to open one read-write or create a bundle in one.

import test from 'ava';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../../lib/errors.js';
import { BACKUP_MANIFEST_PATH, assertNotBackup, backupHolding } from '../../../lib/fs/backup-guard.js';
import { tempDir } from '../../helpers/tools.js';

const MIB = 1024 * 1024;

/** A bundle made into a "backup" by giving it a manifest file (content does not matter to the guard). */
async function fakeBackup(dir: string): Promise<string> {
  const path = join(dir, 'b.sparsebundle');
  await (await SparseBundle.create(path, { sizeBytes: MIB, bandSizeBytes: MIB })).close();
  await writeFile(join(path, BACKUP_MANIFEST_PATH), '{}\n');
  return path;
}

test('backupHolding finds the backup a path is or lies in, as written or through a symlink', async (t) => {
  const dir = await tempDir(t);
  const backup = await fakeBackup(dir);
  t.is(await backupHolding(backup), backup);
  t.is(await backupHolding(join(backup, 'bands', 'not-yet')), backup);
  await symlink(join(backup, 'bands'), join(dir, 'link'));
  t.is(await backupHolding(join(dir, 'link')), backup);
  await mkdir(join(dir, 'plain'));
  t.is(await backupHolding(join(dir, 'plain', 'x.raw')), undefined);
  const refused = await assertNotBackup(join(backup, 'x'), 'write inside a backup').catch((error: unknown) => error);
  t.true(isSbmError(refused, 'SBM_BACKUP_READ_ONLY'));
});

test('the engine opens a backup read-only, refuses it read-write unless allowBackupWrites', async (t) => {
  const dir = await tempDir(t);
  const backup = await fakeBackup(dir);
  const error = await SparseBundle.open(backup).catch((caught: unknown) => caught);
  t.true(isSbmError(error, 'SBM_BACKUP_READ_ONLY'), String(error));
  await (await SparseBundle.open(backup, { readOnly: true })).close();
  const writable = await SparseBundle.open(backup, { allowBackupWrites: true });
  t.false(writable.readOnly);
  await writable.close();
  const inside = await SparseBundle.create(join(backup, 'inner.sparsebundle'), { sizeBytes: MIB }).catch((caught: unknown) => caught);
  t.true(isSbmError(inside, 'SBM_BACKUP_READ_ONLY'), String(inside));
});
