// sbm measure <image|bundle> [--to FORMAT]: the bytes a convert or export would need, like
// `qemu-img measure`: `required` for this disk's data, `fully allocated` for every byte written.
// The VMDK numbers follow sbm's monolithicSparse writer (formats/vmdk/), whose layout this reads.

import type { CommandModule } from 'yargs';
import { openImage } from '../../formats/index.js';
import {
  WRITE_DESCRIPTOR_SECTORS,
  WRITE_GRAIN_BYTES,
  WRITE_GRAIN_SECTORS,
  WRITE_GT_SECTORS,
  writeGeometry,
} from '../../formats/vmdk/vmdk-writer-common.js';
import { DEFAULT_BAND_SIZE_BYTES } from '../../lib/bundle/constants.js';
import {
  MEASURE_TARGETS,
  type MeasureTarget,
  type Measurement,
  dataExtents,
  measureQcow2,
  measureRaw,
  measureSparseBundle,
  measureVmdk,
} from '../../lib/measure-image.js';
import { formatSize } from '../../lib/size.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { passwordSource } from '../password-input.js';

interface MeasureArgs extends GlobalOptions {
  image: string;
  to: MeasureTarget;
}

const SECTOR_BYTES = 512;

export const measureCommand: CommandModule<object, MeasureArgs> = {
  command: 'measure <image>',
  describe: 'bytes a convert or export of the disk would need (like qemu-img measure)',
  builder: (yargs) =>
    yargs
      .positional('image', { type: 'string', demandOption: true, describe: 'a sparse bundle or a disk image (detected by content)' })
      .option('to', { choices: MEASURE_TARGETS, default: 'sparsebundle' as MeasureTarget, describe: 'the format to measure for' })
      .options({ ...jsonOption, ...strictOption }),
  handler: action(async (argv) => {
    const warnings: SbmWarning[] = [];
    const reader = await openImage(argv.image, { onWarning: warningSink(argv, warnings), password: passwordSource(argv) });
    let measurement: Measurement;
    try {
      const data = await dataExtents(reader);
      if (argv.to === 'raw') measurement = measureRaw(reader.sizeBytes);
      else if (argv.to === 'qcow2') measurement = measureQcow2(reader.sizeBytes, data);
      else if (argv.to === 'sparsebundle') measurement = measureSparseBundle(reader.sizeBytes, DEFAULT_BAND_SIZE_BYTES, data);
      else measurement = measureVmdk(reader.sizeBytes, vmdkMetadataBytes(reader.sizeBytes, argv.image), WRITE_GRAIN_BYTES, data);
    } finally {
      await reader.close();
    }
    if (argv.json) printJson({ input: argv.image, ...measurement, warnings });
    else {
      printLine(`required size: ${measurement.requiredBytes} (${formatSize(measurement.requiredBytes)})`);
      printLine(`fully allocated size: ${measurement.fullyAllocatedBytes} (${formatSize(measurement.fullyAllocatedBytes)})`);
    }
  }),
};

/** Header, descriptor, both grain directories and every grain table, padded to a grain (sparse-writer.ts). */
function vmdkMetadataBytes(sizeBytes: number, path: string): number {
  const { gdEntries, gdSectors } = writeGeometry(sizeBytes, path);
  const metadataSectors = 1 + WRITE_DESCRIPTOR_SECTORS + 2 * (gdSectors + gdEntries * WRITE_GT_SECTORS);
  return Math.ceil(metadataSectors / WRITE_GRAIN_SECTORS) * WRITE_GRAIN_SECTORS * SECTOR_BYTES;
}
