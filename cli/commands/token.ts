// sbm token <bundle>: closes the current change-tracking generation and prints a token naming
// this point; `sbm changed-bands --since <token>` later lists what changed after it. Works on a
// bundle `sbm mount` serves, through its control channel.

import type { CommandModule } from 'yargs';
import { openBundleOperations } from '../../lib/control/open-bundle-operations.js';
import { parseToken } from '../../lib/tracking/tracking-token.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { passwordOption, passwordSource } from '../password-input.js';
import { type LeanOptions, leanCommand } from '../lean-parse.js';

interface TokenArgs extends GlobalOptions {
  bundle: string;
}

/** Shared by yargs and the lean fast path (cli/lean-parse.ts) that backup scripts' calls take. */
const TOKEN_OPTIONS = { ...jsonOption, ...strictOption, ...passwordOption } as const satisfies LeanOptions;

export const tokenCommand: CommandModule<object, TokenArgs> = {
  command: 'token <bundle>',
  describe: 'print a change-tracking token naming this point (closes the current generation)',
  builder: (yargs) =>
    yargs.positional('bundle', { type: 'string', demandOption: true, describe: 'a sparse bundle' }).options(TOKEN_OPTIONS),
  handler: action(async (argv) => {
    const warnings: SbmWarning[] = [];
    // A token needs no list of bands: skip listing bands/ (O(bands)) at open.
    const bundle = await openBundleOperations(argv.bundle, {
      onWarning: warningSink(argv, warnings),
      password: passwordSource(argv),
      strictWarnings: argv.strict === true,
      deferBandListing: true,
    });
    try {
      const token = await bundle.token();
      if (argv.json) printJson({ input: argv.bundle, token, ...parseToken(token), warnings });
      else printLine(token);
    } finally {
      await bundle.close();
    }
  }),
};

export const tokenLean = leanCommand(tokenCommand, TOKEN_OPTIONS);
