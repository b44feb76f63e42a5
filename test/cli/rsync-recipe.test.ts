// The README's rsync recipe, run as written with real rsync and the built sbm: a mirror kept with
// it equals the bundle after writes and trims (deleted bands deleted from the mirror), and a
// failed copy does not move the token on, so the next run copies those bands again.

import test from 'ava';
import { execa } from 'execa';
import { chmod, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { REPO_ROOT, SBM_BIN, requireTool, seededBytes, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

/** The README's shell block that holds the rsync recipe, as its paragraphs ("once", "every run"). */
async function recipe(): Promise<{ once: string; everyRun: string }> {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)]
    .map((match) => match[1] ?? '')
    .find((text) => text.includes('--delete-missing-args'));
  if (block === undefined) throw new Error('README has no rsync recipe using --delete-missing-args');
  const [once, everyRun, ...rest] = block.trim().split(/\n\s*\n/);
  if (once === undefined || everyRun === undefined || rest.length > 0)
    throw new Error('the recipe is not two paragraphs ("once", "every run")');
  return { once, everyRun };
}

/** A folder holding an executable `name` that runs `script`. */
async function binDir(dir: string, name: string, script: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, name), `#!/bin/sh\n${script}\n`);
  await chmod(join(dir, name), 0o755);
  return dir;
}

/** bands/ of the mirror is bands/ of the bundle: the same names, every file equal by cmp. */
async function assertMirrored(t: import('ava').ExecutionContext, bundle: string, mirror: string, label: string): Promise<void> {
  const names = (await readdir(join(bundle, 'bands'))).sort();
  t.deepEqual((await readdir(join(mirror, 'bands'))).sort(), names, `${label}: same band files`);
  for (const name of [...names.map((band) => join('bands', band)), 'Info.plist', 'Info.bckup']) {
    const cmp = await execa('cmp', [join(bundle, name), join(mirror, name)], { reject: false });
    t.is(cmp.exitCode, 0, `${label}: ${name} differs: ${cmp.stdout}`);
  }
}

test('the README rsync recipe keeps an exact mirror through writes and trims, and a failed copy keeps the token', async (t) => {
  await requireTool(t, 'rsync');
  await requireTool(t, 'cmp');
  const { once, everyRun } = await recipe();
  const dir = await tempDir(t);
  const sbmBin = await binDir(join(dir, 'bin'), 'sbm', `exec node '${SBM_BIN}' "$@"`);
  const failingRsync = await binDir(join(dir, 'failing-bin'), 'rsync', 'echo "rsync: simulated failure" >&2; exit 23');
  const run = (script: string, extraPath: string[] = []) =>
    execa('bash', ['-c', script], { cwd: dir, reject: false, env: { PATH: [...extraPath, sbmBin, process.env.PATH].join(':') } });

  const path = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 160 * MIB, bandSizeBytes: MIB });
  for (let band = 0; band < 6; band++) await bundle.write(band * MIB, seededBytes(MIB, band + 1));
  await bundle.write(0x80 * MIB, seededBytes(MIB, 80));
  await bundle.close();
  const mirror = join(dir, 'mirror', 'vm.sparsebundle');

  const first = await run(`set -e\n${once}`);
  t.is(first.exitCode, 0, first.stderr);
  await assertMirrored(t, path, mirror, 'after the full copy');

  // A write, a new band, and a trim that deletes bands/80 and bands/3.
  const live = await SparseBundle.open(path);
  await live.write(MIB + 4096, seededBytes(8192, 7));
  await live.write(10 * MIB, seededBytes(MIB, 10));
  await live.trim(0x80 * MIB, MIB);
  await live.trim(3 * MIB, MIB);
  await live.close();

  const tokenBefore = await readFile(join(dir, 'vm.token'), 'utf8');
  const failed = await run(everyRun, [failingRsync]);
  t.not(failed.exitCode, 0, 'the failed copy fails the run');
  t.is(await readFile(join(dir, 'vm.token'), 'utf8'), tokenBefore, 'a failed copy does not move the token on');
  t.true((await readdir(join(mirror, 'bands'))).includes('80'), 'the mirror still has the old bands/80');

  const second = await run(everyRun);
  t.is(second.exitCode, 0, second.stderr);
  t.not(await readFile(join(dir, 'vm.token'), 'utf8'), tokenBefore, 'the token moves on after a good copy');
  t.true((await readFile(join(dir, 'changed.list'), 'utf8')).split('\n').includes('bands/80'), 'the trimmed band is listed');
  await assertMirrored(t, path, mirror, 'after a write and trims');

  // Then a grow (Info.plist changes), more writes and a trim of a band written this round.
  const again = await SparseBundle.open(path);
  await again.write(12 * MIB, seededBytes(MIB, 12));
  await again.trim(10 * MIB, MIB);
  await again.write(0, seededBytes(4096, 99));
  await again.close();
  t.is((await execa('node', [SBM_BIN, 'resize', path, '--size', '200M'], { reject: false })).exitCode, 0);
  const third = await run(everyRun);
  t.is(third.exitCode, 0, third.stderr);
  await assertMirrored(t, path, mirror, 'after a grow, writes and a trim');

  const quiet = await run(everyRun);
  t.is(quiet.exitCode, 0, `a run with nothing changed: ${quiet.stderr}`);
  await assertMirrored(t, path, mirror, 'after a run with nothing changed');
});
