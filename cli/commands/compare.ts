// sbm compare <a> <b>: do two disks read the same, like `qemu-img compare`. Exit 0 when equal,
// 1 when different (after "Content mismatch at offset N!", N being the first differing 512-byte
// sector's offset as qemu prints it), and errors exit with their own code, never 1: an error that
// would exit 1 (a missing file, say) exits 2 here, as qemu-img compare's errors do, so a script can
// tell "different" from "could not compare".

import type { CommandModule } from 'yargs';
import { openImage } from '../../formats/index.js';
import type { ImageReader } from '../../formats/index.js';
import { compareDevices } from '../../lib/compare-devices.js';
import { formatSize } from '../../lib/size.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, jsonOption, printJson, printLine, reportError, strictOption, warningSink } from '../command-kit.js';
import { passwordSource } from '../password-input.js';

interface CompareArgs extends GlobalOptions {
  a: string;
  b: string;
}

const EXIT_DIFFERENT = 1;
const EXIT_ERROR = 2;
const SECTOR_BYTES = 512;

export const compareCommand: CommandModule<object, CompareArgs> = {
  command: 'compare <a> <b>',
  describe: 'compare the contents of two disks (exit 0 equal, 1 different, 2 or more: error), like qemu-img compare',
  builder: (yargs) =>
    yargs
      .positional('a', { type: 'string', demandOption: true, describe: 'a sparse bundle or a disk image' })
      .positional('b', { type: 'string', demandOption: true, describe: 'a sparse bundle or a disk image' })
      .options(jsonOption)
      .option('strict', { ...strictOption.strict, describe: 'treat warnings as errors, and disks of different sizes as different' })
      .example('$0 compare vm.sparsebundle vm.vmdk', 'check that a convert kept every byte'),
  handler: async (argv) => {
    const readers: ImageReader[] = [];
    const warnings: SbmWarning[] = [];
    try {
      const password = passwordSource(argv);
      for (const path of [argv.a, argv.b]) readers.push(await openImage(path, { onWarning: warningSink(argv, warnings), password }));
      const [a, b] = readers as [ImageReader, ImageReader];
      const result = await compareDevices(a, b, { strict: argv.strict });
      const offset = result.firstDifferenceOffset;
      const sectorOffset = offset === undefined ? undefined : Math.floor(offset / SECTOR_BYTES) * SECTOR_BYTES;
      if (argv.json) {
        printJson({
          a: argv.a,
          b: argv.b,
          equal: result.equal,
          sizesDiffer: result.sizesDiffer,
          offset: sectorOffset,
          byteOffset: offset,
          warnings,
        });
      } else if (sectorOffset === undefined && !result.equal) {
        printLine(`Strict mode: Image size mismatch! (${formatSize(a.sizeBytes)} and ${formatSize(b.sizeBytes)})`);
      } else {
        // qemu-img's own lines, so scripts written for it read sbm's the same way.
        if (result.sizesDiffer) printLine('Warning: Image size mismatch!');
        printLine(result.equal ? 'Images are identical.' : `Content mismatch at offset ${sectorOffset}!`);
      }
      if (!result.equal) process.exitCode = EXIT_DIFFERENT;
    } catch (error) {
      reportError(error, argv.json === true);
      if (process.exitCode === undefined || Number(process.exitCode) < EXIT_ERROR) process.exitCode = EXIT_ERROR;
    } finally {
      for (const reader of readers) await reader.close();
    }
  },
};
