// sbm resize <bundle> --size N: grow or shrink the virtual disk.

import type { CommandModule } from 'yargs';
import { SIZE_ALIGNMENT_BYTES } from '../../lib/bundle/constants.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { BundleSession } from '../../lib/session/bundle-session.js';
import { SbmError } from '../../lib/errors.js';
import { formatSize } from '../../lib/size.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { passwordSource } from '../password-input.js';
import { checkOptions, size } from '../option-values.js';

interface ResizeArgs extends GlobalOptions {
  bundle: string;
  size: string;
  shrink: boolean;
}

export const resizeCommand: CommandModule<object, ResizeArgs> = {
  command: 'resize <bundle>',
  describe: 'grow (or, with --shrink, shrink) the virtual disk',
  builder: (yargs) =>
    yargs
      .positional('bundle', { type: 'string', demandOption: true, describe: 'a sparse bundle (not a backup)' })
      .option('size', { type: 'string', demandOption: true, describe: 'new virtual size, e.g. 40G (rounded up to 512 bytes)' })
      .option('shrink', { type: 'boolean', default: false, describe: 'allow a smaller size (data past the new end is deleted)' })
      .options({ ...jsonOption, ...strictOption }),
  handler: action(async (argv) => {
    const sizeBytes = Math.ceil((checkOptions(argv, { size: size(1) }).size ?? 0) / SIZE_ALIGNMENT_BYTES) * SIZE_ALIGNMENT_BYTES;
    const warnings: SbmWarning[] = [];
    const bundle = await SparseBundle.open(argv.bundle, { onWarning: warningSink(argv, warnings), password: passwordSource(argv) });
    try {
      const previousBytes = bundle.sizeBytes;
      if (sizeBytes < previousBytes && !argv.shrink) {
        throw new SbmError(
          'SBM_USAGE',
          `${formatSize(sizeBytes)} is smaller than the disk (${formatSize(previousBytes)}); pass --shrink to cut it`,
        );
      }
      await new BundleSession(bundle).resize(sizeBytes);
      if (argv.json) printJson({ input: argv.bundle, path: argv.bundle, previousBytes, sizeBytes, warnings });
      else printLine(`resized ${argv.bundle}: ${formatSize(previousBytes)} -> ${formatSize(sizeBytes)}`);
    } finally {
      await bundle.close();
    }
  }),
};
