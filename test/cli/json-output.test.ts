// --json is the same everywhere: one object per command, with a `warnings` array and `input`
// (and `output` where the command writes); an error is {"error": {code, message}} on
// stdout as well as the one line on stderr, on the yargs path and the lean fast path alike.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

async function json(t: import('ava').ExecutionContext, args: string[]): Promise<Record<string, unknown>> {
  const result = await runSbm([...args, '--json']);
  t.is(result.exitCode, 0, `sbm ${args.join(' ')}: ${result.stderr}`);
  const value = JSON.parse(result.stdout) as unknown;
  t.true(typeof value === 'object' && value !== null && !Array.isArray(value), `sbm ${args[0]}: an object`);
  const object = value as Record<string, unknown>;
  t.true(Array.isArray(object.warnings), `sbm ${args.join(' ')}: warnings array`);
  return object;
}

test('every command prints one object with warnings, input and output', async (t) => {
  const dir = await tempDir(t);
  const raw = join(dir, 'disk.raw');
  await writeFile(raw, Buffer.concat([randomBytes(MIB), Buffer.alloc(3 * MIB)]));
  const bundle = join(dir, 'disk.sparsebundle');
  const out = join(dir, 'out.raw');
  const dest = join(dir, 'dest');

  t.like(await json(t, ['convert', raw, bundle]), { input: raw, output: bundle });
  t.like(await json(t, ['create', join(dir, 'new'), '--size', '1M']), { output: join(dir, 'new.sparsebundle') });
  t.like(await json(t, ['info', bundle]), { input: bundle });
  t.like(await json(t, ['export', bundle, out]), { input: bundle, source: bundle, output: out });
  t.like(await json(t, ['check', bundle]), { input: bundle, ok: true });
  t.like(await json(t, ['map', bundle]), { input: bundle });
  t.like(await json(t, ['measure', bundle]), { input: bundle });
  t.like(await json(t, ['compare', bundle, out]), { equal: true });
  const token = (await json(t, ['token', bundle])).token as string;
  t.like(await json(t, ['changed-bands', bundle, '--since', token]), { input: bundle });
  t.like(await json(t, ['snapshot', 'create', bundle, 'one']), { input: bundle });
  t.like(await json(t, ['snapshot', 'list', bundle]), { input: bundle });
  t.like(await json(t, ['snapshot', 'delete', bundle, 'one']), { input: bundle, deleted: 'one' });
  t.like(await json(t, ['resize', bundle, '--size', '8M']), { input: bundle, sizeBytes: 8 * MIB });
  t.like(await json(t, ['compact', bundle]), { input: bundle });
  const first = await json(t, ['backup', bundle, dest]);
  t.like(first, { input: bundle });
  t.is(first.output, first.path);
  const second = await json(t, ['backup', bundle, dest]);
  t.like(await json(t, ['backups', dest]), { input: dest, kind: 'destination' });
  t.like(await json(t, ['verify', dest]), { input: dest, ok: true });
  t.like(await json(t, ['diff', first.path as string, second.path as string]), { unchanged: 1 });
  t.like(await json(t, ['thin', dest, '--keep-last', '5', '--dry-run']), { input: dest, dryRun: true });
  const restored = join(dir, 'restored.sparsebundle');
  t.like(await json(t, ['restore', second.path as string, restored]), {
    input: second.path,
    output: restored,
    backup: second.path,
    target: restored,
  });
});

test('with --json an error is an object on stdout and one line on stderr', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'missing.sparsebundle');
  const cases: Array<[string[], string, number]> = [
    [['info', missing], 'SBM_NOT_FOUND', 1], // a handler's error
    [['token', missing], 'SBM_NOT_FOUND', 1], // the lean fast path
    [['resize', missing, '--size', 'lots'], 'SBM_USAGE', 2], // an option value
    [['info'], 'SBM_USAGE', 2], // yargs' own check
    [['compare', missing, missing], 'SBM_NOT_FOUND', 2], // compare's own exit rule
  ];
  for (const [args, code, exitCode] of cases) {
    const result = await runSbm([...args, '--json']);
    t.is(result.exitCode, exitCode, `${args.join(' ')}: ${result.stderr}`);
    const parsed = JSON.parse(result.stdout) as { error: { code: string; message: string } };
    t.is(parsed.error.code, code, args.join(' '));
    t.false(parsed.error.message.startsWith(code), 'the message without the code in front');
    t.true(parsed.error.message.length > 0);
    t.regex(result.stderr, new RegExp(`^sbm: ${code}: `), args.join(' '));
  }
  const plain = await runSbm(['info', missing]);
  t.is(plain.stdout, '', 'without --json stdout stays empty');
});

test('a command that prints its object and then fails (check: exit 5) prints only that object', async (t) => {
  const dir = await tempDir(t);
  const bundle = join(dir, 'b.sparsebundle');
  t.is((await runSbm(['create', bundle, '--size', '4M'])).exitCode, 0);
  await writeFile(join(bundle, 'Info.bckup'), 'not a plist');
  const result = await runSbm(['check', bundle, '--json']);
  t.is(result.exitCode, 5, result.stderr);
  const report = JSON.parse(result.stdout) as { ok: boolean; problems: unknown[] };
  t.false(report.ok);
  t.true(report.problems.length > 0);
  t.regex(result.stderr, /^sbm: SBM_CHECK_FAILED: /m);
});
