// Builds the yargs parser: global options, every command module, and usage errors mapped to
// SBM_USAGE (exit 2) in the same one-line form as every other error.

import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { SbmError } from '../lib/errors.js';
import { reportError } from './command-kit.js';
import { passwordOption } from './password-input.js';
import { type AnyCommand, loadCommands } from './commands/index.js';

/** `commands` replaces the command modules `args` needs (tests parse without running handlers). */
export async function buildCli(givenArgs: string[], commands?: readonly AnyCommand[]): Promise<Argv> {
  const args = completionShell(givenArgs);
  // yargs' own errors come before any handler has argv: --json is looked for in the words.
  const json = args.includes('--json');
  let parser = yargs(args)
    .scriptName('sbm')
    .usage('$0 <command> [options]\n\nSparse-bundle virtual disk manager: hdiutil-compatible bundles, change tracking, NBD, backups.')
    .strict()
    .demandCommand(1, 'name a command (sbm --help lists them)')
    .recommendCommands()
    .help()
    .alias('help', 'h')
    .version(packageVersion())
    .alias('version', 'V')
    .completion('completion', 'print a shell completion script: sbm completion [bash|zsh] >> ~/.bashrc (or ~/.zshrc)')
    // Every command accepts --strict (those that meet no warnings have nothing for it to change).
    .option('strict', { type: 'boolean', default: false, global: true, describe: 'treat warnings as errors' })
    // Every command that opens a bundle takes the password of an encrypted one this way (or from a terminal prompt).
    .option('stdinpass', { ...passwordOption.stdinpass, global: true })
    // The terminal's width (COLUMNS when not a terminal), at most 120; not yargs().terminalWidth():
    // a second parser costs start-up. Lines break between words (scripts/bundle-cli.ts).
    .wrap(helpWidth())
    .epilogue(EPILOGUE)
    .fail((message, error) => {
      if (error !== undefined && error !== null) {
        reportError(error, json);
      } else {
        // yargs breaks some messages (invalid choices) over lines; errors here are one line, the
        // pointer to the help included.
        const oneLine = (message ?? 'bad arguments').replace(/\s*\n\s*/g, ' ');
        reportError(new SbmError('SBM_USAGE', `${oneLine} (see sbm --help)`), json);
      }
      process.exit(process.exitCode ?? 2);
    });
  for (const command of commands ?? (await loadCommands(args))) parser = parser.command(command);
  return parser;
}

const EPILOGUE =
  'Errors are one line on stderr, "sbm: SBM_<CODE>: message" (with --json also {"error": {"code", "message"}} on stdout). ' +
  'Exit status: 0 ok, 1 failed, 2 bad usage, 3 bundle in use, 4 damaged or unsupported input, ' +
  '5 check or verify found problems, 10 full backup required, 70 a bug in sbm, 130 interrupted; ' +
  'every code is listed in the README. DEBUG=sbm:* logs what sbm does to stderr (DEBUG=sbm:nbd for NBD only).';

function helpWidth(): number {
  const columns = process.stdout.columns ?? Number.parseInt(process.env.COLUMNS ?? '', 10);
  return Math.min(120, Number.isSafeInteger(columns) && columns >= 40 ? columns : 80);
}

/**
 * `sbm completion zsh` / `sbm completion bash`: yargs picks the script by $SHELL, so the shell
 * named on the command line is passed that way (and removed from the arguments it would refuse).
 */
function completionShell(args: string[]): string[] {
  const shell = args[1];
  if (args[0] !== 'completion' || shell === undefined || shell.startsWith('-')) return args;
  if (shell !== 'bash' && shell !== 'zsh') {
    reportError(new SbmError('SBM_USAGE', `sbm completion writes bash or zsh scripts, not "${shell}"`, { shell }));
    process.exit(2);
  }
  process.env.SHELL = `/bin/${shell}`;
  process.env.ZSH_NAME = shell === 'zsh' ? 'zsh' : '';
  return [args[0], ...args.slice(2)];
}

/**
 * sbm's version from its package.json: three folders up from the bundle's chunk
 * (dist/cli/chunks/), two up from tsc's output (dist/cli/build-cli.js), one up from the sources.
 */
function packageVersion(): string {
  for (const relative of ['../../../package.json', '../../package.json', '../package.json']) {
    try {
      const manifest = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'sbm' && typeof manifest.version === 'string') return manifest.version;
    } catch {
      // not this folder: try the next
    }
  }
  return 'unknown';
}
