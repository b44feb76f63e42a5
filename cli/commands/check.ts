// sbm check <bundle>: structural audit; exits 5 (SBM_CHECK_FAILED) when problems are found.

import type { CommandModule } from 'yargs';
import { checkBundle } from '../../lib/bundle/check-bundle.js';
import { SbmError } from '../../lib/errors.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine } from '../command-kit.js';
import { counted } from '../plural.js';

interface CheckArgs extends GlobalOptions {
  bundle: string;
}

export const checkCommand: CommandModule<object, CheckArgs> = {
  command: 'check <bundle>',
  describe: 'check a bundle for structural problems (exit 5 if any)',
  builder: (yargs) => yargs.positional('bundle', { type: 'string', demandOption: true, describe: 'a sparse bundle' }).options(jsonOption),
  handler: action(async (argv) => {
    const report = await checkBundle(argv.bundle);
    if (argv.json) {
      printJson({ input: argv.bundle, ...report, ok: report.problems.length === 0 });
    } else {
      for (const finding of report.problems) printLine(`problem ${finding.code}: ${finding.message}`);
      for (const finding of report.warnings) printLine(`warning ${finding.code}: ${finding.message}`);
      if (report.problems.length === 0) printLine(`${argv.bundle}: ok (${counted(report.bandsChecked, 'band')} checked)`);
    }
    if (report.problems.length > 0) {
      throw new SbmError('SBM_CHECK_FAILED', `${argv.bundle}: ${report.problems.length} problem(s) found`, { problems: report.problems });
    }
  }),
};
