// sbm map <image|bundle>: which runs of the disk hold data, like `qemu-img map` (--json's `map`
// is qemu's --output=json array: start, length, present, zero, data).

import type { CommandModule } from 'yargs';
import { openImage } from '../../formats/index.js';
import { allocationMap } from '../../lib/allocation-map.js';
import { formatSize } from '../../lib/size.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { passwordSource } from '../password-input.js';

interface MapArgs extends GlobalOptions {
  image: string;
  format?: string;
}

export const mapCommand: CommandModule<object, MapArgs> = {
  command: 'map <image>',
  describe: 'print the allocation map: which runs hold data, which are zeros or holes (like qemu-img map)',
  builder: (yargs) =>
    yargs
      .positional('image', { type: 'string', demandOption: true, describe: 'a sparse bundle or a disk image (detected by content)' })
      .option('format', { type: 'string', describe: 'skip detection and read as this format' })
      .options({ ...jsonOption, ...strictOption })
      .example('$0 map vm.sparsebundle --json', 'the map as qemu-img map --output=json prints it'),
  handler: action(async (argv) => {
    const warnings: SbmWarning[] = [];
    const reader = await openImage(argv.image, {
      format: argv.format,
      onWarning: warningSink(argv, warnings),
      password: passwordSource(argv),
    });
    try {
      const entries = await allocationMap(reader);
      if (argv.json) {
        printJson({ input: argv.image, map: entries, warnings });
        return;
      }
      const rows = entries.map((entry) => [
        `0x${entry.start.toString(16)}`,
        `0x${entry.length.toString(16)}`,
        formatSize(entry.length),
        entry.data ? 'data' : entry.present ? 'zero' : 'hole',
      ]);
      const header = ['Offset', 'Length', 'Size', 'Kind'];
      const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
      for (const row of [header, ...rows])
        printLine(
          row
            .map((cell, column) => cell.padEnd(widths[column] ?? 0))
            .join('  ')
            .trimEnd(),
        );
    } finally {
      await reader.close();
    }
  }),
};
