// sbm --version / -V, sbm completion (bash and zsh), and --strict accepted by every command.

import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { COMMAND_LOADERS } from '../../cli/commands/index.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { REPO_ROOT, runSbm, tempDir } from '../helpers/tools.js';

test("--version and -V print package.json's version", async (t) => {
  const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const result = await runSbm([flag]);
    t.is(result.exitCode, 0, result.stderr);
    t.is(result.stdout, `${version}\n`);
  }
});

test("completion prints a bash or zsh script, and the script's query completes command names", async (t) => {
  const bash = await runSbm(['completion', 'bash']);
  t.is(bash.exitCode, 0, bash.stderr);
  t.regex(bash.stdout, /complete -o bashdefault -o default -F _sbm_yargs_completions sbm/);
  const zsh = await runSbm(['completion', 'zsh']);
  t.is(zsh.exitCode, 0, zsh.stderr);
  t.regex(zsh.stdout, /^#compdef sbm/m);
  t.regex(zsh.stdout, /compdef _sbm_yargs_completions sbm/);
  const fish = await runSbm(['completion', 'fish']);
  t.is(fish.exitCode, 2);
  t.is(fish.stderr, 'sbm: SBM_USAGE: sbm completion writes bash or zsh scripts, not "fish"\n');
  // What the scripts run on TAB: `sbm --get-yargs-completions sbm com` lists the matching commands.
  const query = await runSbm(['--get-yargs-completions', 'sbm', 'com']);
  t.is(query.exitCode, 0, query.stderr);
  const words = query.stdout.split('\n').map((line) => line.split(':')[0]);
  t.true(words.includes('compare') && words.includes('compact') && words.includes('completion'), query.stdout);
});

test('every command accepts --strict', async (t) => {
  for (const name of Object.keys(COMMAND_LOADERS)) {
    const help = await runSbm([name, '--help']);
    t.is(help.exitCode, 0, `${name}: ${help.stderr}`);
    t.regex(help.stdout, /--strict/, `${name} --help lists --strict`);
  }
  // Commands that had no --strict of their own run with it.
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(disk, { sizeBytes: 4 * 1024 * 1024, bandSizeBytes: 1024 * 1024 });
  await bundle.write(0, Buffer.from('data'));
  await bundle.close();
  const dest = join(dir, 'dest');
  t.is((await runSbm(['backup', disk, dest, '--strict'])).exitCode, 0);
  for (const args of [
    ['check', disk],
    ['backups', dest],
    ['verify', join(dest, 'vm')],
    ['thin', dest, '--keep-last', '1'],
  ]) {
    const result = await runSbm([...args, '--strict']);
    t.is(result.exitCode, 0, `${args[0]} --strict: ${result.stderr}`);
  }
});
