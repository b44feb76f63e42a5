// sbm diff <backup> <backup>: the bands that changed between two backups, from their manifests
// (like `restic diff`): added, removed, and changed by hash.

import type { CommandModule } from 'yargs';
import { diffBackups } from '../../lib/backup/backup-diff.js';
import { formatSize } from '../../lib/size.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption } from '../command-kit.js';

interface DiffArgs extends GlobalOptions {
  from: string;
  to: string;
}

export const diffCommand: CommandModule<object, DiffArgs> = {
  command: 'diff <from> <to>',
  describe: 'list the bands added, removed and changed between two backups (like restic diff)',
  builder: (yargs) =>
    yargs
      .positional('from', { type: 'string', demandOption: true, describe: 'the older backup (DEST/NAME/<time>.sparsebundle)' })
      .positional('to', { type: 'string', demandOption: true, describe: 'the newer backup' })
      .options({ ...jsonOption, ...strictOption }),
  handler: action(async (argv) => {
    const diff = await diffBackups(argv.from, argv.to);
    if (argv.json) {
      printJson({ ...diff, warnings: [] });
      return;
    }
    if (diff.fromSizeBytes !== diff.toSizeBytes) printLine(`size  ${formatSize(diff.fromSizeBytes)} -> ${formatSize(diff.toSizeBytes)}`);
    for (const name of diff.added) printLine(`+    band ${name}`);
    for (const name of diff.removed) printLine(`-    band ${name}`);
    for (const name of diff.changed) printLine(`M    band ${name}`);
    printLine(
      `${diff.added.length} added, ${diff.removed.length} removed, ${diff.changed.length} changed, ${diff.unchanged} unchanged ` +
        `(${formatSize(diff.bandSizeBytes)} bands)`,
    );
  }),
};
