// Backups are never changed by mistake: every command that writes refuses a backup (a bundle
// holding .sbm/manifest.json) or an output inside one with SBM_BACKUP_READ_ONLY, exit 1, and
// leaves every file of the backup as it was (names, sizes, times and contents).

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

/** Every entry under `dir` with its size, mtime and (for files) sha256. */
async function fingerprint(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    const info = await lstat(path);
    const hash = entry.isFile()
      ? createHash('sha256')
          .update(await readFile(path))
          .digest('hex')
      : 'dir';
    out.push(`${path.slice(dir.length)} ${info.size} ${info.mtimeMs} ${hash}`);
  }
  return out.sort();
}

interface Setup {
  disk: string;
  backup: string;
  older: string;
  dir: string;
}

/** A disk with data and two backups of it (the newer one is the one every command aims at). */
async function setup(t: import('ava').ExecutionContext): Promise<Setup> {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(disk, { sizeBytes: 8 * MIB, bandSizeBytes: MIB });
  await bundle.write(0, randomBytes(2 * MIB));
  await bundle.close();
  const paths: string[] = [];
  for (let run = 0; run < 2; run++) {
    const made = await runSbm(['backup', disk, join(dir, 'dest'), '--json']);
    if (made.exitCode !== 0) throw new Error(made.stderr);
    paths.push(JSON.parse(made.stdout).path as string);
  }
  const [older, backup] = paths as [string, string];
  return { disk, backup, older, dir };
}

const REFUSALS: Array<[string, (s: Setup) => string[]]> = [
  ['resize', (s) => ['resize', s.backup, '--size', '16M']],
  ['resize --shrink', (s) => ['resize', s.backup, '--size', '1M', '--shrink']],
  ['snapshot create', (s) => ['snapshot', 'create', s.backup, 'snap']],
  ['snapshot delete', (s) => ['snapshot', 'delete', s.backup, 'snap']],
  ['snapshot revert', (s) => ['snapshot', 'revert', s.backup, 'snap']],
  ['compact', (s) => ['compact', s.backup]],
  ['restore --force onto it', (s) => ['restore', s.older, s.backup, '--force']],
  ['restore --force --to raw onto it', (s) => ['restore', s.older, s.backup, '--force', '--to', 'raw']],
  ['restore inside it', (s) => ['restore', s.older, join(s.backup, 'inner.sparsebundle')]],
  ['convert --force onto it', (s) => ['convert', s.disk, s.backup, '--force']],
  ['export --force onto it', (s) => ['export', s.disk, s.backup, '--format', 'raw', '--force']],
  ['export inside it', (s) => ['export', s.disk, join(s.backup, 'bands', 'disk.raw')]],
  ['create inside it', (s) => ['create', join(s.backup, 'new'), '--size', '1M']],
  ['token', (s) => ['token', s.backup]],
  ['changed-bands', (s) => ['changed-bands', s.backup, '--since', '2020-01-01T00:00:00Z']],
  ['backup of a backup', (s) => ['backup', s.backup, join(s.dir, 'other-dest')]],
  ['sync into it', (s) => ['sync', s.disk, s.backup]],
];

for (const [label, argsOf] of REFUSALS) {
  test(`sbm ${label} refuses a backup with SBM_BACKUP_READ_ONLY and changes nothing`, async (t) => {
    const s = await setup(t);
    const before = await fingerprint(s.backup);
    const result = await runSbm(argsOf(s));
    t.is(result.exitCode, 1, `${result.stdout}${result.stderr}`);
    t.regex(result.stderr, /^sbm: SBM_BACKUP_READ_ONLY: .*(is an|lies inside the) sbm backup/m);
    t.regex(result.stderr, /nothing was changed/);
    t.deepEqual(await fingerprint(s.backup), before);
    const verified = await runSbm(['verify', s.backup]);
    t.is(verified.exitCode, 0, verified.stdout + verified.stderr);
  });
}

test('the same commands still work on the restored copy of a backup', async (t) => {
  const s = await setup(t);
  const copy = join(s.dir, 'copy.sparsebundle');
  const restored = await runSbm(['restore', s.backup, copy]);
  t.is(restored.exitCode, 0, restored.stderr);
  for (const args of [
    ['resize', copy, '--size', '16M'],
    ['snapshot', 'create', copy, 'snap'],
    ['compact', copy],
  ]) {
    const result = await runSbm(args);
    t.is(result.exitCode, 0, `${args.join(' ')}: ${result.stderr}`);
  }
});
