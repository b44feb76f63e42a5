// sbm verify <dest|set|backup>: re-hash every band against its manifest; exit 5 on damage.

import type { CommandModule } from 'yargs';
import { verifyBackups } from '../../lib/backup/backup-catalog.js';
import { SbmError } from '../../lib/errors.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption } from '../command-kit.js';
import { progressReporter } from '../progress.js';
import { counted } from '../plural.js';

interface VerifyArgs extends GlobalOptions {
  path: string;
  progress: boolean;
}

export const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify <path>',
  describe: 're-hash the bands of one backup, of every backup in a set, or of every set in a destination',
  builder: (yargs) =>
    yargs
      .positional('path', { type: 'string', demandOption: true, describe: 'one backup, a set (DEST/NAME) or a destination (DEST)' })
      .option('progress', { type: 'boolean', default: true, describe: 'progress bar on a TTY (--no-progress to hide)' })
      .options({ ...jsonOption, ...strictOption }),
  handler: action(async (argv) => {
    const progress = progressReporter('verifying', argv.progress && !argv.json, { unit: 'bands', moved: 'hashed' });
    const report = await verifyBackups(argv.path, {
      onProgress:
        progress.onProgress &&
        (({ bandsDone, bandsTotal, bytesRead }) => progress.onProgress?.({ bytesDone: bandsDone, bytesTotal: bandsTotal, bytesRead })),
    }).finally(() => progress.stop());
    if (argv.json) printJson({ input: argv.path, ...report, ok: report.damaged.length === 0, warnings: [] });
    else {
      for (const band of report.damaged) {
        const shared = band.sharedWith.length > 0 ? `; also in ${band.sharedWith.join(', ')}` : '';
        printLine(`damaged: ${band.backup} bands/${band.band}: ${band.problem}${shared}`);
      }
      if (report.damaged.length === 0)
        printLine(`ok: ${counted(report.backupsChecked, 'backup')}, ${counted(report.bandsChecked, 'band')} verified`);
    }
    if (report.damaged.length > 0) {
      throw new SbmError('SBM_VERIFY_FAILED', `${counted(report.damaged.length, 'damaged band')} in ${argv.path}`, {
        damaged: report.damaged,
      });
    }
  }),
};
