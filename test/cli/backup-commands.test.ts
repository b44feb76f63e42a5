// sbm backup / backups / restore / verify / thin through the built binary, including a run killed
// mid-backup and a destination that fills up.

import test from 'ava';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listBackups } from '../../lib/backup/backup-set.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { ERROR_CODES } from '../../lib/errors.js';
import { SBM_BIN, requireTool, runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

async function bundleWithData(path: string, bands: number, bandSizeBytes = MIB): Promise<void> {
  const bundle = await SparseBundle.create(path, { sizeBytes: (bands + 4) * bandSizeBytes, bandSizeBytes });
  for (let band = 0; band < bands; band++) await bundle.write(band * bandSizeBytes, randomBytes(bandSizeBytes));
  await bundle.close();
}

test('backup, backups, verify, restore (bundle, in place, raw) and thin from the command line', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'dest');
  await bundleWithData(disk, 6);
  const first = await runSbm(['backup', disk, dest, '--json']);
  t.is(first.exitCode, 0, first.stderr);
  t.like(JSON.parse(first.stdout), { mode: 'full', bandsCopied: 6, bandsLinked: 0 });
  const bundle = await SparseBundle.open(disk);
  await bundle.write(2 * MIB + 17, Buffer.from('second'));
  await bundle.close();
  const second = await runSbm(['backup', disk, dest, '--json']);
  t.is(second.exitCode, 0, second.stderr);
  const secondResult = JSON.parse(second.stdout);
  t.like(secondResult, { mode: 'tracked', bandsCopied: 1, bandsLinked: 5 });

  const listing = await runSbm(['backups', dest, '--json']);
  t.is(listing.exitCode, 0, listing.stderr);
  const { sets } = JSON.parse(listing.stdout);
  t.is(sets[0].backups.length, 2);
  t.is(sets[0].backups[1].uniqueBytes, MIB);

  t.is((await runSbm(['verify', `${dest}/vm`])).exitCode, 0);
  const restored = join(dir, 'restored.sparsebundle');
  t.is((await runSbm(['restore', secondResult.path, restored])).exitCode, 0);
  const raw = join(dir, 'restored.raw');
  t.is((await runSbm(['restore', secondResult.path, raw, '--to', 'raw'])).exitCode, 0);
  const original = join(dir, 'original.raw');
  t.is((await runSbm(['export', disk, original, '--format', 'raw'])).exitCode, 0);
  t.true((await readFile(raw)).equals(await readFile(original)));

  // In place over the live disk: refused without --force, then tracked as changes.
  const firstPath = (await listBackups(join(dest, 'vm')))[0]?.path ?? '';
  const refused = await runSbm(['restore', firstPath, disk]);
  t.is(refused.exitCode, ERROR_CODES.SBM_EXISTS.exitCode);
  const token = JSON.parse((await runSbm(['token', disk, '--json'])).stdout).token as string;
  const inPlace = await runSbm(['restore', firstPath, disk, '--force', '--json']);
  t.is(inPlace.exitCode, 0, inPlace.stderr);
  t.like(JSON.parse(inPlace.stdout), { inPlace: true, bandsWritten: 1 });
  const changed = await runSbm(['changed-bands', disk, '--since', token, '--json']);
  t.is(changed.exitCode, 0, changed.stderr);
  t.deepEqual(
    JSON.parse(changed.stdout).bands.map((band: { index: number }) => band.index),
    [2],
  );

  const thinned = await runSbm(['thin', dest, '--keep-hourly', '1', '--json']);
  t.is(thinned.exitCode, 0, thinned.stderr);
  t.is((await listBackups(join(dest, 'vm'))).length, 1, 'both were taken in the same hour: the newest stays');
  t.is((await runSbm(['verify', join(dest, 'vm')])).exitCode, 0);
});

test('a damaged band is named by verify with the backups that share it', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await bundleWithData(disk, 2);
  t.is((await runSbm(['backup', disk, join(dir, 'dest')])).exitCode, 0);
  t.is((await runSbm(['backup', disk, join(dir, 'dest')])).exitCode, 0);
  const [older, newer] = await listBackups(join(dir, 'dest', 'vm'));
  const { appendFile } = await import('node:fs/promises');
  await appendFile(join(older?.path ?? '', 'bands', '1'), 'rot');
  const result = await runSbm(['verify', join(dir, 'dest', 'vm'), '--json']);
  t.is(result.exitCode, ERROR_CODES.SBM_VERIFY_FAILED.exitCode);
  const damaged = JSON.parse(result.stdout).damaged;
  t.true(
    damaged.some(
      (band: { backup: string; band: string; sharedWith: string[] }) =>
        band.backup === older?.name && band.band === '1' && band.sharedWith.includes(newer?.name ?? ''),
    ),
  );
});

test('SIGKILL mid-backup never leaves a partial backup under a final name; the rerun is correct', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'dest');
  await bundleWithData(disk, 48);
  for (let round = 0; round < 6; round++) {
    const child = execa('node', [SBM_BIN, 'backup', disk, dest], { reject: false });
    await new Promise((resolve) => setTimeout(resolve, 150 + round * 60));
    child.kill('SIGKILL');
    await child;
    for (const backup of await listBackups(join(dest, 'vm'))) {
      const verify = await runSbm(['verify', backup.path]);
      t.is(verify.exitCode, 0, `round ${round}: ${backup.name} is complete: ${verify.stdout}`);
    }
  }
  const rerun = await runSbm(['backup', disk, dest, '--json']);
  t.is(rerun.exitCode, 0, rerun.stderr);
  const result = JSON.parse(rerun.stdout);
  t.deepEqual(
    (await readdir(join(dest, 'vm'))).filter((name) => name.endsWith('.inProgress')),
    [],
  );
  const restored = join(dir, 'restored.raw');
  t.is((await runSbm(['restore', result.path, restored, '--to', 'raw'])).exitCode, 0);
  const original = join(dir, 'original.raw');
  t.is((await runSbm(['export', disk, original, '--format', 'raw'])).exitCode, 0);
  t.true((await readFile(restored)).equals(await readFile(original)));
  // An unmounted bundle is backed up without a snapshot; none may be left behind either way.
  t.deepEqual(await readdir(join(disk, '.sbm', 'snapshots')).catch(() => []), [], 'no snapshot of a killed run is left');
  t.is((await runSbm(['check', disk])).exitCode, 0);
});

test('a destination that fills up fails cleanly and leaves earlier backups untouched', async (t) => {
  await requireTool(t, 'mount');
  const dir = await tempDir(t);
  const mountPoint = join(dir, 'small');
  await mkdir(mountPoint);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', mountPoint]);
  t.teardown(() => execa('umount', [mountPoint]).then(() => undefined));
  const disk = join(dir, 'vm.sparsebundle');
  await bundleWithData(disk, 4);
  t.is((await runSbm(['backup', disk, mountPoint])).exitCode, 0);
  const bundle = await SparseBundle.open(disk);
  for (let band = 4; band < 8; band++) await bundle.write(band * MIB, randomBytes(MIB));
  await bundle.close();
  const full = await runSbm(['backup', disk, mountPoint]);
  t.is(full.exitCode, ERROR_CODES.SBM_NO_SPACE.exitCode);
  t.regex(full.stderr, /^sbm: SBM_NO_SPACE: /);
  const names = await readdir(join(mountPoint, 'vm'));
  t.is(names.filter((name) => name.endsWith('.sparsebundle')).length, 1);
  t.deepEqual(
    names.filter((name) => name.endsWith('.inProgress')),
    [],
  );
  t.is((await runSbm(['verify', join(mountPoint, 'vm')])).exitCode, 0);
});

test('a destination that refuses hard links fails with SBM_NO_HARDLINKS, leaves no partial backup, and --copy works', async (t) => {
  await requireTool(t, 'chattr');
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'dest');
  await bundleWithData(disk, 3);
  t.is((await runSbm(['backup', disk, dest])).exitCode, 0);
  // link(2) of an immutable file fails with EPERM, as it does on filesystems without hard links.
  const [first] = await listBackups(join(dest, 'vm'));
  const pinned = join(first?.path ?? '', 'bands', '0');
  await execa('chattr', ['+i', pinned]);
  t.teardown(() => execa('chattr', ['-i', pinned]).then(() => undefined));
  const bundle = await SparseBundle.open(disk);
  await bundle.write(2 * MIB, Buffer.from('changed'));
  await bundle.close();

  const refused = await runSbm(['backup', disk, dest]);
  t.is(refused.exitCode, ERROR_CODES.SBM_NO_HARDLINKS.exitCode);
  t.regex(refused.stderr, /^sbm: SBM_NO_HARDLINKS: the destination cannot hard-link 0 \(EPERM\); use --copy\n$/);
  const names = await readdir(join(dest, 'vm'));
  t.is(names.filter((name) => name.endsWith('.sparsebundle')).length, 1);
  t.deepEqual(
    names.filter((name) => name.endsWith('.inProgress')),
    [],
  );

  const copied = await runSbm(['backup', disk, dest, '--copy', '--json']);
  t.is(copied.exitCode, 0, copied.stderr);
  t.like(JSON.parse(copied.stdout), { bandsCopied: 1, bandsLinked: 2 });
  t.is((await runSbm(['verify', join(dest, 'vm')])).exitCode, 0);
});
