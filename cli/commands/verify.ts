// sbm verify <dest|set|backup>: re-hash every band against its manifest; exit 5 on damage.

import type { CommandModule } from 'yargs';
import { verifyBackups } from '../../lib/backup/backup-catalog.js';
import { SbmError } from '../../lib/errors.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption } from '../command-kit.js';
import { progressReporter } from '../progress.js';
import { counted } from '../plural.js';
import { isS3Url } from '../../lib/backup/s3/s3-location.js';
import { endpointOption, s3Access } from '../s3-options.js';

interface VerifyArgs extends GlobalOptions {
  path: string;
  progress: boolean;
  endpoint?: string;
  sample?: string;
}

export const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify <path>',
  describe: 're-hash the bands of one backup, of every backup in a set, or of every set in a destination',
  builder: (yargs) =>
    yargs
      .positional('path', { type: 'string', demandOption: true, describe: 'one backup, a set (DEST/NAME) or a destination (DEST)' })
      .option('progress', { type: 'boolean', default: true, describe: 'progress bar on a TTY (--no-progress to hide)' })
      .option('sample', { type: 'string', describe: 'S3 only: re-hash a random N% of the chunks (e.g. 10%)' })
      .options({ ...endpointOption, ...jsonOption, ...strictOption })
      .example('$0 verify s3://my-bucket/sbm --sample 5%', 'download and re-hash a random 5% of the stored chunks'),
  handler: action(async (argv) => {
    const samplePercent = percentOf(argv.sample);
    if (isS3Url(argv.path)) {
      await (await import('../s3-actions.js')).verifyS3(argv.path, s3Access(argv), samplePercent, argv.json === true);
      return;
    }
    if (samplePercent !== undefined) throw new SbmError('SBM_USAGE', '--sample applies to S3 repositories only');
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

/** "10%" or "10" -> 10; undefined when not given; SBM_USAGE unless 0 < N <= 100. */
function percentOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)%?$/.exec(text.trim());
  const value = match === null ? Number.NaN : Number(match[1]);
  if (!(value > 0 && value <= 100)) throw new SbmError('SBM_USAGE', `--sample must be a percentage above 0 and at most 100, not "${text}"`);
  return value;
}
