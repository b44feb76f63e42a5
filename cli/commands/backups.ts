// sbm backups <dest|set|backup>: the backups with their time, size and the bytes unique to each
// (of every set under a destination, of one set, or just the one backup named).

import type { CommandModule } from 'yargs';
import { describeBackups } from '../../lib/backup/backup-catalog.js';
import { resolveBackupTarget } from '../../lib/backup/backup-target.js';
import { formatSize } from '../../lib/size.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption } from '../command-kit.js';
import { printTable } from '../table.js';
import { isS3Url } from '../../lib/backup/s3/s3-location.js';
import { endpointOption, s3Access } from '../s3-options.js';

interface BackupsArgs extends GlobalOptions {
  dest: string;
  endpoint?: string;
}

export const backupsCommand: CommandModule<object, BackupsArgs> = {
  command: 'backups <dest>',
  describe: 'list backups: of every set under a destination, of one set, or one backup (also s3://BUCKET/PREFIX[/SET[/NAME]])',
  builder: (yargs) =>
    yargs
      .positional('dest', { type: 'string', demandOption: true, describe: 'a destination (DEST), a set (DEST/NAME) or one backup' })
      .options({ ...endpointOption, ...jsonOption, ...strictOption }),
  handler: action(async (argv) => {
    if (isS3Url(argv.dest)) {
      await (await import('../s3-actions.js')).listS3Backups(argv.dest, s3Access(argv), argv.json === true);
      return;
    }
    const target = await resolveBackupTarget(argv.dest);
    const sets = [];
    for (const set of target.sets) {
      const backups = await describeBackups(set);
      sets.push({ set, backups: target.kind === 'backup' ? backups.filter((backup) => backup.path === target.path) : backups });
    }
    if (argv.json) {
      printJson({ input: argv.dest, kind: target.kind, sets, warnings: [] });
      return;
    }
    for (const { set, backups } of sets) {
      printLine(`${set}:`);
      printTable(
        ['NAME', 'TIME (UTC)', 'DISK', 'BANDS', 'UNIQUE', 'MODE'],
        backups.map((backup) => [
          backup.name,
          backup.time.replace('T', ' ').replace(/\.\d+Z$/, ''),
          formatSize(backup.sizeBytes),
          String(backup.bands),
          formatSize(backup.uniqueBytes),
          backup.mode,
        ]),
        { indent: '  ', alignRight: [2, 3, 4] },
      );
    }
  }),
};
