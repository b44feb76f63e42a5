// sbm convert <image> [bundle]: any supported image -> a new sparse bundle.

import { basename, dirname, extname, join } from 'node:path';
import type { CommandModule } from 'yargs';
import { openImage } from '../../formats/index.js';
import { DEFAULT_BAND_SIZE_BYTES } from '../../lib/bundle/constants.js';
import { convertToBundle } from '../../lib/convert/convert-to-bundle.js';
import { assertOutputOutsideInputs, imageInputPaths } from '../../lib/fs/output-inside-input.js';
import { formatSize, formatSizeExact } from '../../lib/size.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { counted } from '../plural.js';
import { newEncryption, passwordOption, passwordSource } from '../password-input.js';
import { type LeanOptions, leanCommand } from '../lean-parse.js';
import { MAX_DISK_INDEX, checkOptions, integer, size } from '../option-values.js';
import { refuseImageNamedBundle } from '../output-names.js';
import { progressReporter } from '../progress.js';

interface ConvertArgs extends GlobalOptions {
  image: string;
  bundle?: string;
  'band-size': string;
  force: boolean;
  progress: boolean;
  format?: string;
  'allow-outside': boolean;
  disk?: string;
  encryption?: string;
}

/** Shared by yargs and the lean fast path (cli/lean-parse.ts). */
const CONVERT_OPTIONS = {
  'band-size': {
    type: 'string',
    default: formatSizeExact(DEFAULT_BAND_SIZE_BYTES),
    defaultDescription: formatSizeExact(DEFAULT_BAND_SIZE_BYTES),
    describe: 'band size of the new bundle, 1M..8G',
  },
  force: { type: 'boolean', default: false, describe: 'replace an existing output bundle' },
  progress: { type: 'boolean', default: true, describe: 'progress bar on a TTY (--no-progress to hide)' },
  format: { type: 'string', describe: 'skip detection and read the input as this format (raw: take any file as raw bytes)' },
  'allow-outside': { type: 'boolean', default: false, describe: 'let descriptors name files outside their folder' },
  disk: { type: 'string', describe: 'which disk of a .pvm machine or an OVA/OVF package (default: the first, hdd0)' },
  encryption: {
    type: 'string',
    choices: ['AES-128', 'AES-256'],
    describe: 'encrypt the new bundle as hdiutil does (password: --stdinpass or a prompt)',
  },
  ...jsonOption,
  ...strictOption,
  ...passwordOption,
} as const satisfies LeanOptions;

export const convertCommand: CommandModule<object, ConvertArgs> = {
  command: 'convert <image> [bundle]',
  describe: 'convert a disk image (raw, VMDK, ...) into a sparse bundle',
  builder: (yargs) =>
    yargs
      .positional('image', { type: 'string', demandOption: true, describe: 'input image, detected by content' })
      .positional('bundle', { type: 'string', describe: 'output bundle (default: NAME.sparsebundle beside the input)' })
      .options(CONVERT_OPTIONS)
      .example('$0 convert vm.vmdk', 'writes vm.sparsebundle beside vm.vmdk')
      .example('$0 convert Windows.pvm --disk 1 win-data.sparsebundle', 'the second disk of a Parallels virtual machine'),
  handler: action(async (argv) => {
    const warnings: SbmWarning[] = [];
    const { 'band-size': bandSizeBytes, disk } = checkOptions(argv, { 'band-size': size(1), disk: integer(0, MAX_DISK_INDEX) });
    const onWarning = warningSink(argv, warnings);
    const output = argv.bundle ?? defaultBundlePath(argv.image);
    const password = passwordSource(argv);
    const reader = await openImage(argv.image, { format: argv.format, onWarning, allowOutside: argv['allow-outside'], disk, password });
    const progress = progressReporter('converting', argv.progress && !argv.json);
    try {
      await assertOutputOutsideInputs(output, await imageInputPaths(argv.image, reader));
      // After that check, so an output onto an input is named as such, not given an export hint.
      refuseImageNamedBundle(
        output,
        'sbm convert',
        (exporter) => `to write one, run: sbm export ${argv.image} ${output} --format ${exporter}`,
      );
      const result = await convertToBundle(reader, output, {
        bandSizeBytes: bandSizeBytes ?? DEFAULT_BAND_SIZE_BYTES,
        force: argv.force,
        onWarning,
        copy: { onProgress: progress.onProgress },
        encryption: await newEncryption(argv.encryption, argv),
      });
      progress.stop();
      const summary = { input: argv.image, output, format: reader.formatName, ...result, warnings };
      if (argv.json) printJson(summary);
      else {
        printLine(
          `converted ${argv.image} (${reader.formatName}) -> ${output}: ${formatSize(result.sizeBytes)} virtual, ` +
            `${counted(result.bandsWritten, 'band')}, ${formatSize(result.bytesWritten)} written in ${result.seconds.toFixed(2)} s`,
        );
      }
    } finally {
      progress.stop();
      await reader.close();
    }
  }),
};

function defaultBundlePath(image: string): string {
  const name = basename(image);
  const extension = extname(name);
  const stem = extension.length > 0 && extension.length < name.length ? name.slice(0, -extension.length) : name;
  return join(dirname(image), `${stem}.sparsebundle`);
}

export const convertLean = leanCommand(convertCommand, CONVERT_OPTIONS);
