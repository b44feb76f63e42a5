// sbm thin <dest|set>: delete whole backups by policy; never the newest, never a band another needs.
// Given one backup, thin refuses and names its set: a policy applies to a whole set (as borg
// prune takes a repository, not an archive), and a path naming one backup reads as "this one",
// so thinning its set would delete backups the user did not name.

import type { CommandModule } from 'yargs';
import { lockBackupSet } from '../../lib/backup/backup-set.js';
import { thinBackups } from '../../lib/backup/thin-backups.js';
import { SbmError } from '../../lib/errors.js';
import { formatSize } from '../../lib/size.js';
import { type ThinArgs, thinOptions, thinPolicyOf } from '../backup-options.js';
import { resolveBackupTarget } from '../../lib/backup/backup-target.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption } from '../command-kit.js';
import { isS3Url } from '../../lib/backup/s3/s3-location.js';
import { endpointOption, s3Access } from '../s3-options.js';

interface ThinCommandArgs extends GlobalOptions, ThinArgs {
  dest: string;
  'dry-run': boolean;
  endpoint?: string;
}

export const thinCommand: CommandModule<object, ThinCommandArgs> = {
  command: 'thin <dest>',
  describe: 'delete old backups by policy (whole backups only; the newest is always kept)',
  builder: (yargs) =>
    yargs
      .positional('dest', { type: 'string', demandOption: true, describe: 'a destination (DEST, every set in it) or one set (DEST/NAME)' })
      .options(thinOptions)
      .option('dry-run', { type: 'boolean', default: false, describe: 'print what would be deleted; delete nothing' })
      .options({ ...endpointOption, ...jsonOption, ...strictOption })
      .example('$0 thin /mnt/backup --keep-daily 30 --dry-run', 'show which backups a 30-day policy would delete'),
  handler: action(async (argv) => {
    const policy = thinPolicyOf(argv); // every value checked before anything is read or locked
    const dryRun = argv['dry-run'];
    if (policy === undefined)
      throw new SbmError(
        'SBM_USAGE',
        'give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --max-bytes',
      );
    if (isS3Url(argv.dest)) {
      await (await import('../s3-actions.js')).thinS3(argv.dest, s3Access(argv), policy, dryRun, argv.json === true);
      return;
    }
    // Checked before any lock file is made: nothing is created in a folder that is not a backup set.
    const target = await resolveBackupTarget(argv.dest);
    if (target.kind === 'backup') {
      const set = target.sets[0] ?? '';
      throw new SbmError(
        'SBM_USAGE',
        `${argv.dest} is one backup; thin applies its policy to a whole set: run sbm thin ${set} (--dry-run shows what it would delete); ` +
          'nothing was changed',
        { path: argv.dest, set },
      );
    }
    const results = [];
    for (const set of target.sets) {
      // A dry run takes the lock too, so its answer is not a set another run is changing.
      const lock = await lockBackupSet(set);
      try {
        results.push({ set, dryRun, ...(await thinBackups(set, policy, new Date(), { dryRun })) });
      } finally {
        await lock.release();
      }
    }
    if (argv.json) printJson({ input: argv.dest, dryRun, sets: results, warnings: [] });
    else {
      for (const result of results) {
        const verb = dryRun ? 'would delete' : 'deleted';
        printLine(`${result.set}: ${verb} ${result.deleted.length}, kept ${result.kept.length} (${formatSize(result.bytesAfter)})`);
        if (dryRun) for (const name of result.deleted) printLine(`  would delete ${name}`);
      }
    }
  }),
};
