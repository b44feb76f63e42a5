// The lean fast path (cli/lean-parse.ts) must hand a command's handler exactly what yargs would,
// or step aside. Random argument lists, mixing plain and awkward forms, are parsed by both.

import test from 'ava';
import fc from 'fast-check';
import { thinPolicyOf } from '../../cli/backup-options.js';
import { buildCli } from '../../cli/build-cli.js';
import { COMMAND_LOADERS, LEAN_COMMAND_LOADERS } from '../../cli/commands/index.js';
import { type LeanCommand, leanParse } from '../../cli/lean-parse.js';
import { runSbm } from '../helpers/tools.js';

/** What yargs hands the command's handler for `args` (after the command name), or its error. */
async function parseWithYargs(name: string, args: readonly string[]): Promise<{ argv?: Record<string, unknown>; error?: string }> {
  const real = await COMMAND_LOADERS[name]!();
  let captured: Record<string, unknown> | undefined;
  const capture = {
    ...real,
    handler: (argv: Record<string, unknown>) => {
      captured = argv;
    },
  };
  const parser = (await buildCli([name, ...args], [capture])).exitProcess(false).fail((message, error) => {
    throw error ?? new Error(message);
  });
  try {
    await parser.parseAsync();
  } catch (error) {
    return { error: String(error) };
  }
  return captured === undefined ? { error: 'no handler ran' } : { argv: captured };
}

/** The keys a handler reads: positionals and options, in both spellings, and aliases. */
function handlerKeys(command: LeanCommand): string[] {
  const keys = [...command.command.matchAll(/[<[]([\w-]+)[>\]]/g)].map((match) => match[1]!);
  for (const [key, option] of Object.entries(command.options)) {
    keys.push(
      key,
      key.replace(/-([a-z])/g, (_match, letter: string) => letter.toUpperCase()),
    );
    if (option.alias !== undefined) keys.push(option.alias);
  }
  return keys;
}

const pick = (argv: Record<string, unknown>, keys: readonly string[]) => Object.fromEntries(keys.map((key) => [key, argv[key]]));

const VALUES = ['sbm1:4e63:e158:3', '2026-01-01T00:00:00Z', 'nightly', '7', '-5', '', 'a b', '"x"', "'", "'y'", 'é😀'];
const POSITIONALS = ['vm.sparsebundle', 'a b', '123', 'true', 'false', '-', '-x', ''];
const NUMBERS = ['3', '0', '24', '024', '1e3', '2.5', '-2', 'x', '99999999999999999999'];

/** Argument pieces: each option of the command in plain and awkward forms, plus generic trouble. */
function pieces(command: LeanCommand): fc.Arbitrary<string[]> {
  const forms: Array<fc.Arbitrary<string[]>> = [fc.constantFrom(...POSITIONALS).map((value) => [value])];
  for (const [key, option] of Object.entries(command.options)) {
    const camel = key.replace(/-([a-z])/g, (_match, letter: string) => letter.toUpperCase());
    if (option.type === 'boolean') {
      forms.push(fc.constantFrom([`--${key}`], [`--no-${key}`], [`--${key}=true`], [`--${key}`, 'false'], [`--${key}`, 'true']));
    } else {
      const values = option.type === 'number' ? NUMBERS : option.choices === undefined ? VALUES : [...option.choices, 'bogus'];
      forms.push(
        fc
          .constantFrom(...values)
          .chain((value) => fc.constantFrom([`--${key}`, value], [`--${key}=${value}`], [`--${camel}`, value], [`--${key}`])),
      );
    }
    if (option.alias !== undefined) forms.push(fc.constant([`-${option.alias}`]));
  }
  forms.push(fc.constantFrom(['--'], ['-h'], ['--help'], ['--version'], ['--bogus']));
  // Usually led by the required positionals, so that some lists get past them.
  const required = [...command.command.matchAll(/<([\w-]+)>/g)].map(() => 'vm.sparsebundle');
  return fc
    .tuple(fc.boolean(), fc.array(fc.oneof(...forms), { maxLength: 6 }))
    .map(([lead, chunks]) => [...(lead ? required : []), ...chunks.flat()]);
}

/** A plain call: the positionals, then some options in their usual form, in random order. */
function plainCall(command: LeanCommand): fc.Arbitrary<string[]> {
  const positionals = [...command.command.matchAll(/<([\w-]+)>/g)].map(() => ['vm.sparsebundle']);
  const optional = [...command.command.matchAll(/\[([\w-]+)\]/g)].map(() => fc.constantFrom<string[][]>([], [['out.sparsebundle']]));
  const options = Object.entries(command.options).map(([key, option]) => {
    if (option.type === 'boolean')
      return fc.constantFrom<string[][]>([], [[`--${key}`]], [[`--no-${key}`]], option.alias === undefined ? [] : [[`-${option.alias}`]]);
    const values = option.type === 'number' ? ['0', '3', '24'] : (option.choices ?? VALUES.filter((value) => !/^[-"']/.test(value)));
    const usage = fc.constantFrom(...values).chain((value) => fc.constantFrom([[`--${key}`, value]], [[`--${key}=${value}`]]));
    return option.demandOption === true ? usage : fc.oneof(fc.constant<string[][]>([]), usage);
  });
  // Positionals keep their order among themselves; options go anywhere around them.
  return fc.tuple(fc.tuple(...optional), fc.tuple(...options)).chain(([extra, chosen]) => {
    const ordered = [...positionals, ...extra.flat()];
    const flags = chosen.flat() as string[][];
    return fc.array(fc.nat({ max: ordered.length }), { minLength: flags.length, maxLength: flags.length }).map((slots) => {
      const out: string[][] = ordered.map((positional) => [...positional]);
      const before: string[][] = [];
      flags.forEach((flag, index) => {
        const slot = slots[index] ?? 0;
        if (slot === 0) before.push(flag);
        else (out[slot - 1] as string[]).push(...flag);
      });
      return [...before.flat(), ...out.flat()];
    });
  });
}

for (const name of Object.keys(LEAN_COMMAND_LOADERS)) {
  test(`${name}: whatever the lean parser accepts, yargs parses to the same handler arguments`, async (t) => {
    const command = await LEAN_COMMAND_LOADERS[name]!();
    const keys = handlerKeys(command);
    let accepted = 0;
    await fc.assert(
      // Plain calls mixed in: random pieces alone rarely make a call the lean parser takes.
      fc.asyncProperty(fc.oneof(pieces(command), plainCall(command)), async (args) => {
        const lean = leanParse(command, args);
        if (lean === undefined) return;
        accepted++;
        const yargs = await parseWithYargs(name, args);
        t.is(yargs.error, undefined, `yargs rejected ${JSON.stringify(args)} which the lean parser accepted`);
        t.deepEqual(pick(lean, keys), pick(yargs.argv ?? {}, keys), JSON.stringify(args));
      }),
      { numRuns: 300 },
    );
    t.true(accepted > 0, 'the random lists included calls the lean parser took');
  });

  test(`${name}: the lean parser takes every plain call, as yargs reads it`, async (t) => {
    const command = await LEAN_COMMAND_LOADERS[name]!();
    const keys = handlerKeys(command);
    await fc.assert(
      fc.asyncProperty(plainCall(command), async (args) => {
        const lean = leanParse(command, args);
        t.not(lean, undefined, `the lean parser stepped aside for ${JSON.stringify(args)}`);
        const yargs = await parseWithYargs(name, args);
        t.deepEqual(pick(lean ?? {}, keys), pick(yargs.argv ?? {}, keys), JSON.stringify(args));
      }),
      { numRuns: 100 },
    );
  });
}

test('the lean parser steps aside for help, unknown options, repeats, "--" and bad choices', async (t) => {
  const command = await LEAN_COMMAND_LOADERS['changed-bands']!();
  const base = ['vm.sparsebundle', '--since', 'nightly'];
  t.truthy(leanParse(command, base));
  for (const extra of [
    ['--help'],
    ['-h'],
    ['--bogus'],
    ['--since', 'again'],
    ['--'],
    ['--audit', 'bogus'],
    ['--relative', '--no-relative'],
    ['--json', 'false'],
    ['second'],
  ]) {
    t.is(leanParse(command, [...base, ...extra]), undefined, extra.join(' '));
  }
  t.is(leanParse(command, ['vm.sparsebundle']), undefined, 'missing --since');
});

test('the lean parser reads negations, numbers and optional positionals as yargs does', async (t) => {
  const convert = await LEAN_COMMAND_LOADERS.convert!();
  t.like(leanParse(convert, ['vm.vmdk', '--no-progress']), { image: 'vm.vmdk', bundle: undefined, progress: false, force: false });
  t.like(leanParse(convert, ['vm.vmdk', 'out.sparsebundle', '--band-size', '1M']), {
    bundle: 'out.sparsebundle',
    bandSize: '1M',
    'band-size': '1M',
  });
  const backup = await LEAN_COMMAND_LOADERS.backup!();
  // Counts are text to both parsers; cli/option-values.ts judges them in the handler.
  t.like(leanParse(backup, ['vm.sparsebundle', 'dest', '--keep-hourly', '24']), { keepHourly: '24', 'keep-hourly': '24', progress: true });
  t.is(leanParse(backup, ['vm.sparsebundle', 'dest', '--keep-hourly', '-2']), undefined, '-2 looks like an option: yargs decides');
});

test('numeric option values are judged alike whichever parser read them', async (t) => {
  const backup = await LEAN_COMMAND_LOADERS.backup!();
  const verdict = (argv: Record<string, unknown>): string => {
    try {
      return JSON.stringify(thinPolicyOf(argv));
    } catch (error) {
      return String(error);
    }
  };
  for (const value of ['24', '024', '1e3', 'x', '', '1.5', '0', '99999999999999999999', '-2']) {
    for (const args of [['--keep-hourly', value], [`--keep-hourly=${value}`], ['--max-bytes', value]]) {
      const full = ['vm.sparsebundle', 'dest', ...args];
      const yargs = await parseWithYargs('backup', full);
      t.is(yargs.error, undefined, full.join(' '));
      const yargsVerdict = verdict(yargs.argv ?? {});
      const lean = leanParse(backup, full);
      if (lean !== undefined) t.is(verdict(lean), yargsVerdict, full.join(' '));
      if (['x', '', '1.5', '0', '-2', '1e3'].includes(value) && args[0] !== '--max-bytes')
        t.regex(yargsVerdict, /SBM_USAGE/, full.join(' '));
    }
  }
});

test('names inherited from Object are unknown commands, not crashes', async (t) => {
  for (const name of ['constructor', 'toString', '__proto__']) {
    const result = await runSbm([name, 'x']);
    t.is(result.exitCode, 2, `${name}: ${result.stderr}`);
    t.regex(result.stderr, /^sbm: SBM_USAGE: /);
  }
});

test('an option with a setting the lean parser does not know leaves the command to yargs', (t) => {
  const command: LeanCommand = {
    command: 'x <bundle>',
    options: { size: { type: 'string', describe: 'd', coerce: (value: string) => value.length } as never },
    handler: () => undefined,
  };
  t.is(leanParse(command, ['b', '--size', '3']), undefined);
  t.truthy(leanParse({ ...command, options: { size: { type: 'string', describe: 'd' } } }, ['b', '--size', '3']));
});
