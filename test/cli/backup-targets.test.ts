// `verify`, `backups` and `thin` take a destination (DEST, every set in it), one set (DEST/NAME)
// or one backup. thin refuses one backup (a policy applies to a whole set) and names the set.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { listBackups } from '../../lib/backup/backup-set.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { ERROR_CODES } from '../../lib/errors.js';
import { runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

/** DEST with two sets (vm, db) of two backups each. */
async function destination(t: import('ava').ExecutionContext): Promise<{ dir: string; dest: string }> {
  const dir = await tempDir(t);
  const dest = join(dir, 'dest');
  for (const name of ['vm', 'db']) {
    const disk = join(dir, `${name}.sparsebundle`);
    const bundle = await SparseBundle.create(disk, { sizeBytes: 4 * MIB, bandSizeBytes: MIB });
    await bundle.write(0, randomBytes(2 * MIB));
    await bundle.close();
    for (let run = 0; run < 2; run++) {
      const made = await runSbm(['backup', disk, dest]);
      if (made.exitCode !== 0) throw new Error(made.stderr);
    }
  }
  return { dir, dest };
}

test('backups lists a destination, a set or one backup, in aligned columns', async (t) => {
  const { dest } = await destination(t);
  const [first, second] = await listBackups(join(dest, 'vm'));
  const listing = async (path: string) => {
    const result = await runSbm(['backups', path, '--json']);
    t.is(result.exitCode, 0, result.stderr);
    return JSON.parse(result.stdout) as {
      kind: string;
      sets: Array<{ set: string; backups: Array<{ name: string }> }>;
      warnings: unknown[];
    };
  };
  const all = await listing(dest);
  t.is(all.kind, 'destination');
  t.deepEqual(
    all.sets.map((set) => [set.set, set.backups.length]),
    [
      [join(dest, 'db'), 2],
      [join(dest, 'vm'), 2],
    ],
  );
  t.deepEqual(all.warnings, []);
  const set = await listing(join(dest, 'vm'));
  t.is(set.kind, 'set');
  t.deepEqual(
    set.sets[0]?.backups.map((backup) => backup.name),
    [first?.name, second?.name],
  );
  const one = await listing(`${first?.path}/`);
  t.is(one.kind, 'backup');
  t.deepEqual(
    one.sets.map((entry) => [entry.set, entry.backups.map((backup) => backup.name)]),
    [[join(dest, 'vm'), [first?.name]]],
  );

  const text = await runSbm(['backups', join(dest, 'vm')]);
  t.is(text.exitCode, 0, text.stderr);
  const lines = text.stdout.trimEnd().split('\n').slice(1);
  t.is(lines.length, 3, text.stdout);
  // Text columns start, number columns end, where their titles do, on every line.
  const header = lines[0] ?? '';
  for (const title of ['TIME', 'MODE']) {
    const at = header.indexOf(title);
    for (const line of lines.slice(1)) t.true(line[at - 1] === ' ' && line[at] !== ' ', `${title} column in: ${line}`);
  }
  for (const title of ['DISK', 'BANDS', 'UNIQUE']) {
    const end = header.indexOf(title) + title.length;
    for (const line of lines.slice(1)) t.true(line[end - 1] !== ' ' && line[end] === ' ', `${title} column in: ${line}`);
  }
  for (const line of lines.slice(1))
    t.regex(line, /^ {2}\d{4}-\d\d-\d\d-\d{6}(-\d+)?\.sparsebundle +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +4\.00 MiB +2 +/);
});

test('verify checks a destination, a set, one backup (by its manifest, whatever its name)', async (t) => {
  const { dir, dest } = await destination(t);
  const verify = async (path: string) => {
    const result = await runSbm(['verify', path, '--json']);
    return { exitCode: result.exitCode, report: JSON.parse(result.stdout) as Record<string, unknown>, stderr: result.stderr };
  };
  t.like((await verify(dest)).report, { backupsChecked: 4, bandsChecked: 8, ok: true, warnings: [] });
  t.like((await verify(join(dest, 'db'))).report, { backupsChecked: 2, ok: true });
  const [older] = await listBackups(join(dest, 'db'));
  t.like((await verify(older?.path ?? '')).report, { backupsChecked: 1, bandsChecked: 2, ok: true });

  // A backup moved out of its set under another name is still one backup.
  await mkdir(join(dir, 'elsewhere'));
  const moved = join(dir, 'elsewhere', 'kept-copy.sparsebundle');
  const [, newerVm] = await listBackups(join(dest, 'vm'));
  await rename(newerVm?.path ?? '', moved);
  t.like((await verify(moved)).report, { backupsChecked: 1, ok: true });

  await appendFile(join(older?.path ?? '', 'bands', '1'), 'rot');
  const damaged = await verify(dest);
  t.is(damaged.exitCode, ERROR_CODES.SBM_VERIFY_FAILED.exitCode, damaged.stderr);
  const bands = damaged.report.damaged as Array<{ backup: string; band: string; sharedWith: string[] }>;
  t.true(
    bands.some((band) => band.backup === `db/${older?.name}` && band.band === '1' && band.sharedWith.length === 1),
    JSON.stringify(bands),
  );
});

test('thin takes a destination or a set; one backup is refused with its set named, nothing changed', async (t) => {
  const { dest } = await destination(t);
  const dry = await runSbm(['thin', dest, '--keep-last', '1', '--dry-run', '--json']);
  t.is(dry.exitCode, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout) as { dryRun: boolean; sets: Array<{ set: string; deleted: string[] }>; warnings: unknown[] };
  t.true(plan.dryRun);
  t.deepEqual(
    plan.sets.map((set) => [set.set, set.deleted.length]),
    [
      [join(dest, 'db'), 1],
      [join(dest, 'vm'), 1],
    ],
  );

  const [older] = await listBackups(join(dest, 'vm'));
  const before = await readdir(join(dest, 'vm'));
  const refused = await runSbm(['thin', older?.path ?? '', '--keep-last', '1']);
  t.is(refused.exitCode, 2, refused.stderr);
  t.regex(refused.stderr, /^sbm: SBM_USAGE: .* is one backup; thin applies its policy to a whole set: run sbm thin .*\/dest\/vm /);
  t.deepEqual(await readdir(join(dest, 'vm')), before, 'nothing deleted, no lock file made');

  const real = await runSbm(['thin', join(dest, 'vm'), '--keep-last', '1']);
  t.is(real.exitCode, 0, real.stderr);
  t.is((await listBackups(join(dest, 'vm'))).length, 1);
  t.is((await listBackups(join(dest, 'db'))).length, 2, 'the other set is untouched');
});

test('a folder holding no backups is SBM_NOT_A_BACKUP for all three', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'plain', 'sub'), { recursive: true });
  for (const args of [['backups'], ['verify'], ['thin', '--keep-last', '1']]) {
    const [command, ...options] = args;
    const result = await runSbm([command ?? '', join(dir, 'plain'), ...options]);
    t.is(result.exitCode, ERROR_CODES.SBM_NOT_A_BACKUP.exitCode, `${command}: ${result.stderr}`);
    t.regex(result.stderr, /^sbm: SBM_NOT_A_BACKUP: /);
  }
});
