// sbm compact <bundle>: give back the space of zeros, like `hdiutil compact`: bands that hold only
// zeros are deleted and zero tails are cut, as tracked changes that snapshots and backups survive.

import type { CommandModule } from 'yargs';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { compactBundle } from '../../lib/session/compact.js';
import { formatSize } from '../../lib/size.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { counted } from '../plural.js';
import { passwordSource } from '../password-input.js';

interface CompactArgs extends GlobalOptions {
  bundle: string;
}

export const compactCommand: CommandModule<object, CompactArgs> = {
  command: 'compact <bundle>',
  describe: 'delete all-zero bands and cut zero band tails (like hdiutil compact); tracked, snapshot-safe',
  builder: (yargs) =>
    yargs
      .positional('bundle', { type: 'string', demandOption: true, describe: 'a sparse bundle (not mounted)' })
      .options({ ...jsonOption, ...strictOption }),
  handler: action(async (argv) => {
    const warnings: SbmWarning[] = [];
    const bundle = await SparseBundle.open(argv.bundle, { onWarning: warningSink(argv, warnings), password: passwordSource(argv) });
    try {
      const result = await compactBundle(bundle);
      if (argv.json) printJson({ input: argv.bundle, path: argv.bundle, ...result, warnings });
      else {
        const { bandsRemoved, bandsTrimmed, bytesFreed } = result;
        printLine(
          `compacted ${argv.bundle}: ${counted(bandsRemoved, 'band')} removed, ${bandsTrimmed} trimmed, ${formatSize(bytesFreed)} freed`,
        );
      }
    } finally {
      await bundle.close();
    }
  }),
};
