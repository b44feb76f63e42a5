// sbm info <bundle|image>: what the disk is, however it is stored.

import type { CommandModule } from 'yargs';
import { openImage } from '../../formats/index.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { SbmError, isSbmError } from '../../lib/errors.js';
import { formatSize } from '../../lib/size.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { MAX_DISK_INDEX, checkOptions, integer } from '../option-values.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { passwordSource } from '../password-input.js';
import { describeDetail, labelOf } from '../detail-lines.js';

interface InfoArgs extends GlobalOptions {
  image: string;
  format?: string;
  'allow-outside': boolean;
  disk?: string;
  verify: boolean;
}

export const infoCommand: CommandModule<object, InfoArgs> = {
  command: 'info <image>',
  describe: 'show virtual size, layout and allocation of a bundle or image',
  builder: (yargs) =>
    yargs
      .positional('image', { type: 'string', demandOption: true, describe: 'a sparse bundle or a disk image (detected by content)' })
      .option('format', { type: 'string', describe: 'skip detection and read as this format (raw: take any file as raw bytes)' })
      .option('allow-outside', { type: 'boolean', default: false, describe: 'let descriptors name files outside their folder' })
      .option('disk', { type: 'string', describe: 'which disk of a .pvm machine or an OVA/OVF package (default: the first, hdd0)' })
      .option('verify', { type: 'boolean', default: false, describe: 'UDIF .dmg: read it all and check every checksum it carries' })
      .options({ ...jsonOption, ...strictOption }),
  handler: action(async (argv) => {
    const warnings: SbmWarning[] = [];
    const sink = argv.json ? (warning: SbmWarning) => void warnings.push(warning) : warningSink(argv, warnings);
    const { disk } = checkOptions(argv, { disk: integer(0, MAX_DISK_INDEX) });
    const password = passwordSource(argv);
    const reader = await openImage(argv.image, {
      format: argv.format,
      onWarning: sink,
      allowOutside: argv['allow-outside'],
      disk,
      password,
    }).catch(async (error: unknown) => {
      // Like `qemu-img info -U`: a bundle in use (e.g. by sbm mount) is still described, with a warning.
      if (!isSbmError(error, 'SBM_LOCKED')) throw error;
      sink({ code: 'SBM_IN_USE', message: `${error.message.replace(/^SBM_LOCKED: /, '')}; showing what is on disk now` });
      return SparseBundle.open(argv.image, { readOnly: true, forceShare: true, onWarning: sink, password });
    });
    try {
      const details = await reader.details();
      if (argv.verify) {
        if (!hasVerify(reader))
          throw new SbmError('SBM_USAGE', `--verify applies to UDIF .dmg images (${argv.image} is ${reader.formatName})`);
        details.verified = await reader.verify();
      }
      const result = { input: argv.image, path: argv.image, format: reader.formatName, sizeBytes: reader.sizeBytes, ...details, warnings };
      if (argv.json) {
        printJson(result);
        return;
      }
      const rows: Array<[string, string]> = [
        ['path', argv.image],
        ['format', reader.formatName],
        ['virtual size', `${formatSize(reader.sizeBytes)} (${reader.sizeBytes} bytes)`],
        ...Object.entries(details).map(([key, value]): [string, string] => [labelOf(key), describeDetail(key, value)]),
      ];
      const width = Math.max(...rows.map(([label]) => label.length)) + 2;
      for (const [label, value] of rows) printLine(`${`${label}:`.padEnd(width)}${value}`.replace(/ +\n/, '\n'));
    } finally {
      await reader.close();
    }
  }),
};

/** Readers with checksums over the whole image that only a full pass can check (UDIF's). */
function hasVerify(reader: object): reader is { verify(): Promise<Record<string, unknown>> } {
  return typeof (reader as { verify?: unknown }).verify === 'function';
}
