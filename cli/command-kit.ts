// Shared plumbing for command modules: one-line errors with stable codes, --json output,
// warnings on stderr, and --strict. Commands hold no logic the library lacks.

import { debugLog } from '../lib/debug-log.js';
import { SbmError, isSbmError } from '../lib/errors.js';
import { type SbmWarning, type WarningSink, strictWarningError } from '../lib/warnings.js';

const debug = debugLog('sbm:cli');

export interface GlobalOptions {
  json?: boolean;
  strict?: boolean;
  /** Read an encrypted bundle's password from standard input (cli/password-input.ts). */
  stdinpass?: boolean;
}

/** Wraps a command handler: maps any error to one line on stderr and the code's exit status. */
export function action<A extends GlobalOptions>(handler: (argv: A) => Promise<void>): (argv: A) => Promise<void> {
  return async (argv) => {
    try {
      await handler(argv);
    } catch (error) {
      reportError(error, argv.json === true);
    }
  };
}

/**
 * The error as one line on stderr and its code's exit status; with `json` also as
 * `{"error": {"code", "message"}}` on stdout, so a script reading --json output
 * always gets one object (the message without the code in front). A command that printed its
 * object and then fails (check, verify: exit 5) prints no second one.
 */
export function reportError(error: unknown, json = false): void {
  const sbmError = isSbmError(error)
    ? error
    : new SbmError('SBM_INTERNAL', error instanceof Error ? error.message : String(error), {}, { cause: error });
  debug('%O', error);
  process.stderr.write(`sbm: ${sbmError.message}\n`);
  if (json && !jsonPrinted) {
    const message = sbmError.message.startsWith(`${sbmError.code}: `) ? sbmError.message.slice(sbmError.code.length + 2) : sbmError.message;
    printJson({ error: { code: sbmError.code, message } });
  }
  if (sbmError.code === 'SBM_INTERNAL' && !debug.enabled && error instanceof Error && error.stack) {
    process.stderr.write('sbm: run with DEBUG=sbm:* for details\n');
  }
  process.exitCode = sbmError.exitCode;
}

/**
 * Prints warnings as `sbm: warning CODE: message`; with --strict the first one fails the command.
 * Pass `collected` to hand them to --json output too (every command's object has `warnings`).
 */
export function warningSink(argv: GlobalOptions, collected: SbmWarning[] = []): WarningSink {
  return (warning) => {
    collected.push(warning);
    if (argv.strict) throw strictWarningError(warning);
    process.stderr.write(`sbm: warning ${warning.code}: ${warning.message}\n`);
  };
}

/** Set once a command printed its --json object: a failure after it (check, verify) adds no second one. */
let jsonPrinted = false;

export function printJson(value: unknown): void {
  jsonPrinted = true;
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLine(text = ''): void {
  process.stdout.write(`${text}\n`);
}

/** The options every data-printing command accepts. */
export const jsonOption = { json: { type: 'boolean', default: false, describe: 'print machine-readable JSON' } } as const;
export const strictOption = { strict: { type: 'boolean', default: false, describe: 'treat warnings as errors' } } as const;
