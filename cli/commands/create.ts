// sbm create <bundle> --size 20G [--band-size 8M]

import { lstat } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { SbmError } from '../../lib/errors.js';
import { withStagedOutput } from '../../lib/fs/staged-output.js';
import { DEFAULT_BAND_SIZE_BYTES, SIZE_ALIGNMENT_BYTES } from '../../lib/bundle/constants.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { formatSize, parseSize } from '../../lib/size.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';

interface CreateArgs extends GlobalOptions {
  bundle: string;
  size: string;
  'band-size': string;
}

export const createCommand: CommandModule<object, CreateArgs> = {
  command: 'create <bundle>',
  describe: 'create an empty sparse bundle (hdiutil-compatible)',
  builder: (yargs) =>
    yargs
      .positional('bundle', { type: 'string', demandOption: true, describe: 'path of the new NAME.sparsebundle' })
      .option('size', { type: 'string', demandOption: true, describe: 'virtual size, e.g. 20G (rounded up to 512 bytes)' })
      .option('band-size', { type: 'string', default: String(DEFAULT_BAND_SIZE_BYTES), describe: 'band size, 1M..8G, multiple of 4K (default 8M)' })
      .options({ ...jsonOption, ...strictOption })
      .example('$0 create vm.sparsebundle --size 40G', '40 GiB disk in 8 MiB bands'),
  handler: action(async (argv) => {
    const requested = parseSize(argv.size, '--size');
    const sizeBytes = Math.ceil(requested / SIZE_ALIGNMENT_BYTES) * SIZE_ALIGNMENT_BYTES;
    const bandSizeBytes = parseSize(argv['band-size'], '--band-size');
    // lstat, not withStagedOutput's --force advice: create never replaces anything.
    if (await lstat(argv.bundle).then(() => true, () => false)) throw new SbmError('SBM_EXISTS', `${argv.bundle} already exists`, { path: argv.bundle });
    // Built under a temporary name and renamed when complete: a full filesystem or a signal
    // leaves nothing under the name that would block a retry.
    const bandCount = await withStagedOutput(argv.bundle, {}, async (staging) => {
      const bundle = await SparseBundle.create(staging, { sizeBytes, bandSizeBytes, onWarning: warningSink(argv) });
      await bundle.close();
      return bundle.bandCount;
    });
    const result = { path: argv.bundle, sizeBytes, bandSizeBytes, bandCount };
    if (argv.json) printJson(result);
    else printLine(`created ${argv.bundle}: ${formatSize(sizeBytes)} in ${bandCount} bands of ${formatSize(bandSizeBytes)}`);
  }),
};
