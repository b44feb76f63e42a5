// A fast path for the commands scripts call most (`sbm token`, `sbm changed-bands`, `sbm backup`,
// `sbm convert`): their plain arguments are parsed with node:util's parseArgs against the
// command's own option table, and the handler runs without loading yargs at all: loading,
// building and running yargs would be a large share of a short call such as changed-bands.
//
// The fast path takes only arguments it reads exactly as yargs would. Anything else (help,
// version, an unknown or repeated option, `--`, a value that looks like an option or a boolean,
// an inline value in quotes, a number yargs might read differently, a bad choice, a missing
// argument) makes it step aside, and yargs parses the same arguments with its usual answers and
// errors.
// test/cli/lean-parse.test.ts checks that both parsers agree on every list the fast path takes.
// Option names must not start with `no-` (that is yargs' negation, `--no-progress`).

import { parseArgs } from 'node:util';

/** The subset of yargs' option settings the fast path understands. */
export interface LeanOption {
  readonly type: 'boolean' | 'string' | 'number';
  readonly describe: string;
  readonly alias?: string;
  readonly default?: boolean | string | number;
  readonly choices?: readonly string[];
  readonly demandOption?: boolean;
  /** What help shows as the default (display only). */
  readonly defaultDescription?: string;
}

export type LeanOptions = Readonly<Record<string, LeanOption>>;

/**
 * Settings the fast path honours. Tables built by spreading shared ones escape TypeScript's
 * excess-property check, so an option with anything else (coerce, implies, array...) is left to
 * yargs at run time too.
 */
const LEAN_SETTINGS = new Set(['type', 'describe', 'alias', 'default', 'choices', 'demandOption', 'defaultDescription']);

/**
 * A command the fast path may run: its yargs `command` string (`<required>` then `[optional]`
 * positionals), its option table (the one its yargs builder uses) and its handler.
 */
export interface LeanCommand {
  readonly command: string;
  readonly options: LeanOptions;
  readonly handler: (argv: Record<string, unknown>) => void | Promise<void>;
}

/** The lean form of a yargs command module whose builder uses `options` as its option table. */
export function leanCommand(
  command: { command?: string | readonly string[]; handler: (argv: never) => void | Promise<void> },
  options: LeanOptions,
): LeanCommand {
  return { command: String(command.command), options, handler: command.handler as LeanCommand['handler'] };
}

/**
 * The argv yargs would hand `command`'s handler for `args` (the arguments after the command
 * name), or undefined when the arguments are not plain enough to be sure: then yargs decides.
 */
export function leanParse(command: LeanCommand, args: readonly string[]): Record<string, unknown> | undefined {
  const [name, ...words] = command.command.split(' ');
  const positionalNames: string[] = [];
  let requiredCount = 0;
  for (const word of words) {
    const required = /^<([\w-]+)>$/.exec(word)?.[1];
    const optional = /^\[([\w-]+)\]$/.exec(word)?.[1];
    if (required !== undefined && requiredCount === positionalNames.length) requiredCount++;
    else if (optional === undefined) return undefined; // variadic, or required after optional: yargs' job
    positionalNames.push(required ?? (optional as string));
  }
  // Numbers are read as text and converted below; `--no-KEY` (yargs' negation) is its own flag.
  const config: Record<string, { type: 'boolean' | 'string'; short?: string }> = {};
  for (const [key, option] of Object.entries(command.options)) {
    if (Object.keys(option).some((setting) => !LEAN_SETTINGS.has(setting))) return undefined;
    const type = option.type === 'boolean' ? 'boolean' : 'string';
    config[key] = option.alias === undefined ? { type } : { type, short: option.alias };
    if (option.type === 'boolean') config[`no-${key}`] = { type: 'boolean' };
  }
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: typeof config; strict: true; allowPositionals: true; tokens: true }>>;
  try {
    parsed = parseArgs({ args: [...args], options: config, strict: true, allowPositionals: true, tokens: true });
  } catch {
    return undefined;
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind === 'option-terminator') return undefined;
    if (token.kind === 'option') {
      const key = token.name.replace(/^no-/, '');
      if (seen.has(key)) return undefined; // yargs collects repeats into an array
      seen.add(key);
      // yargs does not take "-" or "-x" as the value of the option before it, and strips the
      // quotes around an inline value (--since="x" is x to yargs)
      if (token.inlineValue === false && token.value?.startsWith('-') === true) return undefined;
      if (token.inlineValue === true && /^["']/.test(token.value ?? '')) return undefined;
    } else if (token.value === 'true' || token.value === 'false' || token.value.startsWith('-')) {
      return undefined; // yargs may read it as the value of a preceding boolean flag
    }
  }
  if (parsed.positionals.length < requiredCount || parsed.positionals.length > positionalNames.length) return undefined;

  const argv: Record<string, unknown> = { _: [name], $0: 'sbm' };
  parsed.positionals.forEach((value, index) => {
    setKey(argv, positionalNames[index] as string, value);
  });
  const values = parsed.values as Record<string, string | boolean | undefined>;
  for (const [key, option] of Object.entries(command.options)) {
    // `--KEY --no-KEY` was refused above as a repeat.
    let given: string | boolean | number | undefined = values[`no-${key}`] === true ? false : values[key];
    if (option.type === 'number' && given !== undefined) {
      if (typeof given !== 'string' || !/^(0|[1-9][0-9]{0,14})$/.test(given)) return undefined;
      given = Number(given);
    }
    const value = given ?? option.default;
    if (value === undefined) {
      if (option.demandOption === true) return undefined;
      continue;
    }
    if (option.choices !== undefined && !option.choices.includes(String(value))) return undefined;
    setKey(argv, key, value);
    if (option.alias !== undefined) argv[option.alias] = value;
  }
  return argv;
}

/** Runs `command` through the fast path; false when yargs must parse the arguments instead. */
export async function runLean(command: LeanCommand, args: readonly string[]): Promise<boolean> {
  const argv = leanParse(command, args);
  if (argv === undefined) return false;
  await command.handler(argv);
  return true;
}

/** yargs stores a dashed key under both spellings: `token-file` and `tokenFile`. */
function setKey(argv: Record<string, unknown>, key: string, value: unknown): void {
  argv[key] = value;
  const camel = key.replace(/-([a-z])/g, (_match, letter: string) => letter.toUpperCase());
  if (camel !== key) argv[camel] = value;
}
