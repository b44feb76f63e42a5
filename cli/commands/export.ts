// sbm export <bundle> <out> [--format raw|vmdk|qcow2|vdi|vhdx]: write the disk as another image format (by
// default the one the output's extension names).

import type { CommandModule } from 'yargs';
import { EXPORTERS, findExporter, openImage } from '../../formats/index.js';
import { assertOutputOutsideInputs, imageInputPaths } from '../../lib/fs/output-inside-input.js';
import { withStagedOutput } from '../../lib/fs/staged-output.js';
import { SbmError } from '../../lib/errors.js';
import { formatSize } from '../../lib/size.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { passwordSource } from '../password-input.js';
import { imageExtensionOf, writableExtensions, writableFormats } from '../output-names.js';
import { progressReporter } from '../progress.js';

interface ExportArgs extends GlobalOptions {
  bundle: string;
  out: string;
  format?: string;
  subformat?: string;
  compress: boolean;
  force: boolean;
  progress: boolean;
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export <bundle> <out>',
  describe: `write a bundle (or any image) as an image file (${writableFormats(', ')}); holes stay holes`,
  builder: (yargs) =>
    yargs
      .positional('bundle', { type: 'string', demandOption: true, describe: 'source bundle or image' })
      .positional('out', { type: 'string', demandOption: true, describe: 'output file' })
      .option('format', {
        type: 'string',
        choices: EXPORTERS.map((e) => e.name),
        describe: `output format (default: from the name: ${writableExtensions()})`,
      })
      .option('subformat', { type: 'string', describe: 'format variant (vmdk: monolithicSparse, streamOptimized; vdi, vhdx: dynamic)' })
      .option('compress', { type: 'boolean', default: false, describe: 'qcow2: deflate-compressed clusters where that saves space' })
      .option('force', { type: 'boolean', default: false, describe: 'replace an existing output file' })
      .option('progress', { type: 'boolean', default: true, describe: 'progress bar on a TTY (--no-progress to hide)' })
      .options({ ...jsonOption, ...strictOption }),
  handler: action(async (argv) => {
    const format = argv.format ?? formatOfName(argv.out);
    const exporter = findExporter(format);
    if (argv.compress && exporter.canCompress !== true) throw new SbmError('SBM_USAGE', `--compress is not available for ${format} output`);
    const warnings: SbmWarning[] = [];
    const source = await openImage(argv.bundle, { onWarning: warningSink(argv, warnings), password: passwordSource(argv) });
    const progress = progressReporter('exporting', argv.progress && !argv.json);
    try {
      await assertOutputOutsideInputs(argv.out, await imageInputPaths(argv.bundle, source));
      const result = await withStagedOutput(argv.out, { force: argv.force }, (staging) =>
        exporter.export(source, staging, {
          subformat: argv.subformat,
          compress: argv.compress,
          copy: { onProgress: progress.onProgress },
        }),
      );
      progress.stop();
      // `source` stays beside `input` for scripts written before the names were unified.
      const summary = {
        input: argv.bundle,
        source: argv.bundle,
        output: argv.out,
        format,
        sizeBytes: source.sizeBytes,
        ...result,
        warnings,
      };
      if (argv.json) printJson(summary);
      else printLine(`exported ${argv.bundle} -> ${argv.out} (${format}): ${formatSize(result.bytesWritten)} of data written`);
    } finally {
      progress.stop();
      await source.close();
    }
  }),
};

/** The exporter an output's extension names, as `--format` would; anything else needs --format. */
function formatOfName(out: string): string {
  const image = imageExtensionOf(out);
  if (image?.exporter !== undefined) return image.exporter;
  const why = image === undefined ? 'its name does not say which format' : `sbm cannot write ${image.extension} images`;
  throw new SbmError('SBM_USAGE', `${out}: ${why}; pass --format ${EXPORTERS.map((e) => e.name).join('|')}`, { path: out });
}
