// sbm diff between two backups, and sbm thin's --keep-last, --keep-monthly and --keep-yearly,
// through the built binary on real backup sets.

import test from 'ava';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { backupStem, listBackups } from '../../lib/backup/backup-set.js';
import { selectKept } from '../../lib/backup/thin-backups.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

test('diff lists the bands added, removed and changed between two backups, from their manifests', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'dest');
  const bundle = await SparseBundle.create(disk, { sizeBytes: 16 * MIB, bandSizeBytes: MIB });
  for (const band of [0, 1, 2, 3]) await bundle.write(band * MIB, randomBytes(MIB));
  await bundle.close();
  const first = JSON.parse((await runSbm(['backup', disk, dest, '--json'])).stdout);
  const changed = await SparseBundle.open(disk);
  await changed.write(2 * MIB + 5, Buffer.from('changed')); // band 2 changed
  await changed.trim(MIB, MIB); // band 1 removed
  await changed.write(10 * MIB, randomBytes(100)); // band a added
  await changed.write(3 * MIB, Buffer.from(await changed.read(3 * MIB, 10))); // band 3 rewritten, same bytes
  await changed.close();
  const second = JSON.parse((await runSbm(['backup', disk, dest, '--json'])).stdout);

  const diff = await runSbm(['diff', first.path, second.path, '--json']);
  t.is(diff.exitCode, 0, diff.stderr);
  t.like(JSON.parse(diff.stdout), { added: ['a'], removed: ['1'], changed: ['2'], unchanged: 2, bandSizeBytes: MIB });
  const human = await runSbm(['diff', first.path, second.path]);
  t.is(human.stdout, '+    band a\n-    band 1\nM    band 2\n1 added, 1 removed, 1 changed, 2 unchanged (1.00 MiB bands)\n');
  const reverse = JSON.parse((await runSbm(['diff', second.path, first.path, '--json'])).stdout);
  t.like(reverse, { added: ['1'], removed: ['a'], changed: ['2'] });

  const notBackup = await runSbm(['diff', first.path, disk]);
  t.is(notBackup.exitCode, 4);
  t.regex(notBackup.stderr, /^sbm: SBM_NOT_A_BACKUP: /);
});

/** A set with one real backup, hard-linked under the names of backups taken at `times`. */
async function setWithBackupsAt(dir: string, times: readonly Date[]): Promise<string> {
  const disk = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'dest');
  const bundle = await SparseBundle.create(disk, { sizeBytes: 4 * MIB, bandSizeBytes: MIB });
  await bundle.write(0, randomBytes(MIB));
  await bundle.close();
  const made = JSON.parse((await runSbm(['backup', disk, dest, '--json'])).stdout) as { path: string };
  const setDir = join(dest, 'vm');
  for (const time of times) await execa('cp', ['-al', made.path, join(setDir, `${backupStem(time)}.sparsebundle`)]);
  await execa('rm', ['-rf', made.path]);
  return setDir;
}

test('thin --keep-last keeps the N newest; --keep-monthly and --keep-yearly the newest of each recent month or year', async (t) => {
  const dir = await tempDir(t);
  const now = new Date();
  const monthsAgo = (months: number, day: number) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - months, day, 12));
  const times = [
    monthsAgo(26, 5), // two years back and more
    monthsAgo(14, 5),
    monthsAgo(14, 20), // newest of its month
    monthsAgo(2, 3),
    monthsAgo(1, 2),
    monthsAgo(1, 9), // newest of last month
    new Date(now.getTime() - 60_000), // the newest backup, this month
  ];
  const setDir = await setWithBackupsAt(dir, times);
  const names = times.map((time) => `${backupStem(time)}.sparsebundle`);
  const thin = async (...options: string[]) => {
    const result = await runSbm(['thin', setDir, '--dry-run', '--json', ...options]);
    t.is(result.exitCode, 0, result.stderr);
    return (JSON.parse(result.stdout) as { sets: Array<{ kept: string[] }> }).sets[0]?.kept ?? [];
  };
  t.deepEqual(await thin('--keep-last', '3'), names.slice(4));
  t.deepEqual(await thin('--keep-monthly', '2'), [names[5], names[6]]);
  t.deepEqual(await thin('--keep-monthly', '3'), [names[3], names[5], names[6]]);
  // Newest of this year and of last year (the year 14 months back may be two years back in January: computed).
  const yearOf = (time: Date) => time.getUTCFullYear();
  const expectedYearly = names.filter((_, index) => {
    const time = times[index] as Date;
    if (yearOf(now) - yearOf(time) >= 2) return false;
    return !times.some((other, otherIndex) => otherIndex > index && yearOf(other) === yearOf(time));
  });
  t.deepEqual(await thin('--keep-yearly', '2'), expectedYearly);
  t.deepEqual(await thin('--keep-last', '1', '--keep-monthly', '2'), [names[5], names[6]]);

  // Counts are checked like the others: nothing is read or deleted on a bad value.
  for (const bad of ['0', '-1', 'abc', '']) {
    const refused = await runSbm(['thin', setDir, '--keep-monthly', bad]);
    t.is(refused.exitCode, 2, `--keep-monthly ${bad}`);
    t.regex(refused.stderr, /^sbm: SBM_USAGE: --keep-monthly/);
  }
  t.is((await runSbm(['thin', setDir, '--keep-yearly', '1', '--keep-last', 'x'])).exitCode, 2);
  t.is((await listBackups(setDir)).length, times.length, 'nothing deleted by the dry runs and refusals');

  // A real run deletes what the dry run named.
  const real = await runSbm(['thin', setDir, '--keep-last', '2', '--json']);
  t.is(real.exitCode, 0, real.stderr);
  t.deepEqual(
    (await listBackups(setDir)).map((backup) => backup.name),
    names.slice(5),
  );
});

test('selectKept by calendar month and year counts calendar units, not 30- or 365-day spans', (t) => {
  const entry = (iso: string) => ({ name: iso, path: iso, time: new Date(iso) });
  const backups = ['2024-12-31T23:00:00Z', '2025-01-31T10:00:00Z', '2025-02-01T01:00:00Z', '2025-03-01T00:30:00Z'].map(entry);
  const now = new Date('2025-03-01T01:00:00Z');
  t.deepEqual([...selectKept(backups, { keepMonthly: 3 }, now)].sort(), [
    '2025-01-31T10:00:00Z',
    '2025-02-01T01:00:00Z',
    '2025-03-01T00:30:00Z',
  ]);
  t.deepEqual([...selectKept(backups, { keepYearly: 1 }, now)].sort(), ['2025-03-01T00:30:00Z']);
  t.deepEqual([...selectKept(backups, { keepYearly: 2 }, now)].sort(), ['2024-12-31T23:00:00Z', '2025-03-01T00:30:00Z']);
  t.deepEqual([...selectKept(backups, { keepLast: 2 }, now)].sort(), ['2025-02-01T01:00:00Z', '2025-03-01T00:30:00Z']);
});
