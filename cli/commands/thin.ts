// sbm thin <dest>: delete whole backups by policy; never the newest, never a band another needs.

import type { CommandModule } from 'yargs';
import { lockBackupSet } from '../../lib/backup/backup-set.js';
import { thinBackups } from '../../lib/backup/thin-backups.js';
import { SbmError } from '../../lib/errors.js';
import { formatSize } from '../../lib/size.js';
import { type ThinArgs, thinOptions, thinPolicyOf } from '../backup-options.js';
import { resolveSets } from '../backup-sets.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine } from '../command-kit.js';

interface ThinCommandArgs extends GlobalOptions, ThinArgs {
  dest: string;
  'dry-run': boolean;
}

export const thinCommand: CommandModule<object, ThinCommandArgs> = {
  command: 'thin <dest>',
  describe: 'delete old backups by policy (whole backups only; the newest is always kept)',
  builder: (yargs) =>
    yargs
      .positional('dest', { type: 'string', demandOption: true })
      .options(thinOptions)
      .option('dry-run', { type: 'boolean', default: false, describe: 'print what would be deleted; delete nothing' })
      .options(jsonOption)
      .example('$0 thin /mnt/backup --keep-daily 30 --dry-run', 'show which backups a 30-day policy would delete'),
  handler: action(async (argv) => {
    const policy = thinPolicyOf(argv); // every value checked before anything is read or locked
    const dryRun = argv['dry-run'];
    if (policy === undefined)
      throw new SbmError(
        'SBM_USAGE',
        'give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --max-bytes',
      );
    const sets = await resolveSets(argv.dest);
    // Checked before any lock file is made: nothing is created in a folder that is not a backup set.
    if (sets.length === 0) {
      throw new SbmError(
        'SBM_NOT_A_BACKUP',
        `${argv.dest} is not a backup set or a folder of sets (no backup with a manifest); nothing was changed`,
        {
          path: argv.dest,
        },
      );
    }
    const results = [];
    for (const set of sets) {
      // A dry run takes the lock too, so its answer is not a set another run is changing.
      const lock = await lockBackupSet(set);
      try {
        results.push({ set, dryRun, ...(await thinBackups(set, policy, new Date(), { dryRun })) });
      } finally {
        await lock.release();
      }
    }
    if (argv.json) printJson(results);
    else {
      for (const result of results) {
        const verb = dryRun ? 'would delete' : 'deleted';
        printLine(`${result.set}: ${verb} ${result.deleted.length}, kept ${result.kept.length} (${formatSize(result.bytesAfter)})`);
        if (dryRun) for (const name of result.deleted) printLine(`  would delete ${name}`);
      }
    }
  }),
};
