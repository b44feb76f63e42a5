// sbm backups <set>: the backups of a set with their time, size and the bytes unique to each.

import type { CommandModule } from 'yargs';
import { describeBackups } from '../../lib/backup/backup-catalog.js';
import { SbmError } from '../../lib/errors.js';
import { formatSize } from '../../lib/size.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine } from '../command-kit.js';
import { resolveSets } from '../backup-sets.js';

interface BackupsArgs extends GlobalOptions {
  dest: string;
}

export const backupsCommand: CommandModule<object, BackupsArgs> = {
  command: 'backups <dest>',
  describe: 'list backups (of one set DEST/NAME, or of every set under DEST)',
  builder: (yargs) => yargs.positional('dest', { type: 'string', demandOption: true }).options(jsonOption),
  handler: action(async (argv) => {
    const sets = await resolveSets(argv.dest);
    if (sets.length === 0) throw new SbmError('SBM_NOT_A_BACKUP', `${argv.dest} holds no backups`, { path: argv.dest });
    const listing = [];
    for (const set of sets) listing.push({ set, backups: await describeBackups(set) });
    if (argv.json) {
      printJson(listing);
      return;
    }
    for (const { set, backups } of listing) {
      printLine(`${set}:`);
      for (const backup of backups) {
        printLine(
          `  ${backup.name}  ${backup.time}  ${formatSize(backup.sizeBytes)} disk, ` +
            `${backup.bands} bands, ${formatSize(backup.uniqueBytes)} unique`,
        );
      }
    }
  }),
};
