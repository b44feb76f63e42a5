// sbm export <bundle> <out> --format raw|vmdk: write the disk as another image format.

import type { CommandModule } from 'yargs';
import { EXPORTERS, findExporter, openImage } from '../../formats/index.js';
import { assertOutputOutsideInputs, imageInputPaths } from '../../lib/fs/output-inside-input.js';
import { withStagedOutput } from '../../lib/fs/staged-output.js';
import { formatSize } from '../../lib/size.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { progressReporter } from '../progress.js';

interface ExportArgs extends GlobalOptions {
  bundle: string;
  out: string;
  format: string;
  subformat?: string;
  force: boolean;
  progress: boolean;
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export <bundle> <out>',
  describe: 'write a bundle (or any image) as a raw or VMDK file; holes stay holes',
  builder: (yargs) =>
    yargs
      .positional('bundle', { type: 'string', demandOption: true, describe: 'source bundle or image' })
      .positional('out', { type: 'string', demandOption: true, describe: 'output file' })
      .option('format', { type: 'string', demandOption: true, choices: EXPORTERS.map((e) => e.name), describe: 'output format' })
      .option('subformat', { type: 'string', describe: 'format variant (vmdk: monolithicSparse, streamOptimized)' })
      .option('force', { type: 'boolean', default: false, describe: 'replace an existing output file' })
      .option('progress', { type: 'boolean', default: true, describe: 'progress bar on a TTY (--no-progress to hide)' })
      .options({ ...jsonOption, ...strictOption }),
  handler: action(async (argv) => {
    const exporter = findExporter(argv.format);
    const source = await openImage(argv.bundle, { onWarning: warningSink(argv) });
    const progress = progressReporter('exporting', argv.progress && !argv.json);
    try {
      await assertOutputOutsideInputs(argv.out, await imageInputPaths(argv.bundle, source));
      const result = await withStagedOutput(argv.out, { force: argv.force }, (staging) =>
        exporter.export(source, staging, { subformat: argv.subformat, copy: { onProgress: progress.onProgress } }),
      );
      progress.stop();
      const summary = { source: argv.bundle, output: argv.out, format: argv.format, sizeBytes: source.sizeBytes, ...result };
      if (argv.json) printJson(summary);
      else printLine(`exported ${argv.bundle} -> ${argv.out} (${argv.format}): ${formatSize(result.bytesWritten)} of data written`);
    } finally {
      progress.stop();
      await source.close();
    }
  }),
};
