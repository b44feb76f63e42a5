// sbm create <bundle> --size 20G [--band-size 8M] [--encryption AES-256 --stdinpass]: `.sparsebundle`
// is appended when missing.

import { lstat } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { SbmError } from '../../lib/errors.js';
import { withStagedOutput } from '../../lib/fs/staged-output.js';
import { DEFAULT_BAND_SIZE_BYTES, SIZE_ALIGNMENT_BYTES } from '../../lib/bundle/constants.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { formatSize, formatSizeExact } from '../../lib/size.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { counted } from '../plural.js';
import { checkOptions, size } from '../option-values.js';
import { newEncryption, passwordOption } from '../password-input.js';
import { BUNDLE_EXTENSION, refuseImageNamedBundle } from '../output-names.js';

interface CreateArgs extends GlobalOptions {
  bundle: string;
  size: string;
  'band-size': string;
  encryption?: string;
}

export const createCommand: CommandModule<object, CreateArgs> = {
  command: 'create <bundle>',
  describe: 'create an empty sparse bundle (hdiutil-compatible)',
  builder: (yargs) =>
    yargs
      .positional('bundle', {
        type: 'string',
        demandOption: true,
        describe: 'path of the new NAME.sparsebundle (.sparsebundle is appended when missing)',
      })
      .option('size', { type: 'string', demandOption: true, describe: 'virtual size, e.g. 20G (rounded up to 512 bytes)' })
      .option('band-size', {
        type: 'string',
        default: formatSizeExact(DEFAULT_BAND_SIZE_BYTES),
        defaultDescription: formatSizeExact(DEFAULT_BAND_SIZE_BYTES),
        describe: 'band size, 1M..8G, multiple of 4K',
      })
      .option('encryption', {
        type: 'string',
        choices: ['AES-128', 'AES-256'],
        describe: 'encrypt as hdiutil does; the password comes from --stdinpass or a terminal prompt (asked twice)',
      })
      .options({ ...jsonOption, ...strictOption, ...passwordOption })
      .example('$0 create vm.sparsebundle --size 40G', '40 GiB disk in 8 MiB bands')
      .example('printf %s "$PW" | $0 create vm --size 40G --encryption AES-256 --stdinpass', 'an encrypted bundle hdiutil opens'),
  handler: action(async (argv) => {
    const values = checkOptions(argv, { size: size(1), 'band-size': size(1) });
    const sizeBytes = Math.ceil((values.size ?? 0) / SIZE_ALIGNMENT_BYTES) * SIZE_ALIGNMENT_BYTES;
    const bandSizeBytes = values['band-size'] ?? DEFAULT_BAND_SIZE_BYTES;
    const path = bundlePathFor(argv.bundle);
    const warnings: SbmWarning[] = [];
    const encryption = await newEncryption(argv.encryption, argv);
    // lstat, not withStagedOutput's --force advice: create never replaces anything.
    if (
      await lstat(path).then(
        () => true,
        () => false,
      )
    )
      throw new SbmError('SBM_EXISTS', `${path} already exists`, { path });
    // Built under a temporary name and renamed when complete: a full filesystem or a signal
    // leaves nothing under the name that would block a retry.
    const bandCount = await withStagedOutput(path, {}, async (staging) => {
      const bundle = await SparseBundle.create(staging, { sizeBytes, bandSizeBytes, onWarning: warningSink(argv, warnings), encryption });
      await bundle.close();
      return bundle.bandCount;
    });
    const result = { path, sizeBytes, bandSizeBytes, bandCount, ...(argv.encryption === undefined ? {} : { encryption: argv.encryption }) };
    const encrypted = argv.encryption === undefined ? '' : `, encrypted with ${argv.encryption}`;
    if (argv.json) printJson({ output: path, ...result, warnings });
    else
      printLine(`created ${path}: ${formatSize(sizeBytes)} in ${counted(bandCount, 'band')} of ${formatSize(bandSizeBytes)}${encrypted}`);
  }),
};

/**
 * As hdiutil does, `sbm create z` makes `z.sparsebundle`: a bundle is recognised by its name on
 * macOS. A name that promises an image file (`z.vmdk`) is refused rather than made into a folder.
 */
function bundlePathFor(given: string): string {
  const trimmed = given.replace(/(.)\/+$/, '$1');
  if (trimmed.toLowerCase().endsWith(BUNDLE_EXTENSION)) return trimmed;
  refuseImageNamedBundle(
    trimmed,
    'sbm create',
    (exporter) => `create a bundle, then run: sbm export BUNDLE ${trimmed} --format ${exporter}`,
  );
  return `${trimmed}${BUNDLE_EXTENSION}`;
}
