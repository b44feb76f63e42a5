// sbm verify <backup|set>: re-hash every band against its manifest; exit 5 on damage.

import type { CommandModule } from 'yargs';
import { verifyBackups } from '../../lib/backup/backup-catalog.js';
import { SbmError } from '../../lib/errors.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine } from '../command-kit.js';

interface VerifyArgs extends GlobalOptions {
  path: string;
}

export const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify <path>',
  describe: 're-hash the bands of a backup (or of every backup in a set) against the manifests',
  builder: (yargs) => yargs.positional('path', { type: 'string', demandOption: true }).options(jsonOption),
  handler: action(async (argv) => {
    const report = await verifyBackups(argv.path);
    if (argv.json) printJson({ ...report, ok: report.damaged.length === 0 });
    else {
      for (const band of report.damaged) {
        const shared = band.sharedWith.length > 0 ? `; also in ${band.sharedWith.join(', ')}` : '';
        printLine(`damaged: ${band.backup} bands/${band.band}: ${band.problem}${shared}`);
      }
      if (report.damaged.length === 0) printLine(`ok: ${report.backupsChecked} backup(s), ${report.bandsChecked} bands verified`);
    }
    if (report.damaged.length > 0) {
      throw new SbmError('SBM_VERIFY_FAILED', `${report.damaged.length} damaged band(s) in ${argv.path}`, { damaged: report.damaged });
    }
  }),
};
