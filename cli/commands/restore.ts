// sbm restore <backup> <target> [--to raw|vmdk|qcow2|vdi|vhdx]: into a new bundle, over a live one
// (--force, tracked as changes), or as an image file (--to, or a target named .vmdk/.qcow2/.vdi/.vhdx/.raw/.img).

import { stat } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { findExporter } from '../../formats/index.js';
import { readManifest } from '../../lib/backup/backup-manifest.js';
import { overwriteBundle } from '../../lib/backup/restore-backup.js';
import { convertToBundle } from '../../lib/convert/convert-to-bundle.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { SbmError } from '../../lib/errors.js';
import { assertOutputOutsideInputs } from '../../lib/fs/output-inside-input.js';
import { withStagedOutput } from '../../lib/fs/staged-output.js';
import type { SbmWarning, WarningSink } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, warningSink } from '../command-kit.js';
import { passwordSource } from '../password-input.js';
import { imageExtensionOf, writableExtensions, writableFormats } from '../output-names.js';
import { progressReporter } from '../progress.js';
import { isS3Url } from '../../lib/backup/s3/s3-location.js';
import type { BlockDevice } from '../../lib/block-device.js';
import { endpointOption, s3Access } from '../s3-options.js';

interface RestoreArgs extends GlobalOptions {
  backup: string;
  target: string;
  to?: string;
  force: boolean;
  progress: boolean;
  endpoint?: string;
}

export const restoreCommand: CommandModule<object, RestoreArgs> = {
  command: 'restore <backup> <target>',
  describe: `restore a backup into a new bundle, over an existing bundle (--force), or to an image (--to ${writableFormats()})`,
  builder: (yargs) =>
    yargs
      .positional('backup', {
        type: 'string',
        demandOption: true,
        describe: 'a backup: DEST/NAME/<time>.sparsebundle, or s3://BUCKET/PREFIX/NAME/<time>',
      })
      .positional('target', {
        type: 'string',
        demandOption: true,
        describe: `a new bundle, an existing bundle (with --force), or an image file (${writableExtensions()} or --to)`,
      })
      .option('to', {
        type: 'string',
        describe: `write an image file of this format instead of a bundle (default: from the target name: ${writableExtensions()})`,
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'overwrite an existing target (a bundle is rewritten in place, tracked)',
      })
      .option('progress', { type: 'boolean', default: true, describe: 'progress bar on a TTY (--no-progress to hide)' })
      .options(endpointOption)
      .options(jsonOption),
  handler: action(async (argv) => {
    const warnings: SbmWarning[] = [];
    const onWarning = warningSink(argv, warnings);
    const password = passwordSource(argv);
    const s3 = isS3Url(argv.backup);
    if (!s3) await assertOutputOutsideInputs(argv.target, [argv.backup], { outputLabel: 'restore target', inputLabel: 'backup' });
    const to = argv.to ?? formatNamedBy(argv.target);
    const opened = s3
      ? await (await import('../s3-actions.js')).openS3Backup(argv.backup, s3Access(argv), 'restore') // the AWS SDK loads only here
      : await openFolderBackup(argv.backup, onWarning, password);
    const source = opened.device;
    const progress = progressReporter('restoring', argv.progress && !argv.json);
    const copy = { onProgress: progress.onProgress };
    try {
      let result: object;
      if (to !== undefined) {
        const exporter = findExporter(to);
        result = await withStagedOutput(argv.target, { force: argv.force }, (staging) => exporter.export(source, staging, { copy }));
      } else if (await isBundle(argv.target)) {
        if (!argv.force) throw new SbmError('SBM_EXISTS', `${argv.target} exists; --force rewrites it in place (tracked as changes)`);
        const live = await SparseBundle.open(argv.target, { onWarning, password });
        try {
          result = { inPlace: true, ...(await overwriteBundle(source, live, copy)) };
        } finally {
          await live.close();
        }
      } else {
        // An encrypted backup restores as a bundle encrypted again, under the same password.
        const given = opened.encryption === undefined ? undefined : await password();
        const encryption = given === undefined ? undefined : { keyBits: keyBitsOf(opened.encryption), password: given };
        result = await convertToBundle(source, argv.target, {
          bandSizeBytes: opened.bandSizeBytes,
          force: argv.force,
          onWarning,
          encryption,
          copy,
        });
      }
      if (argv.json) {
        // `backup` and `target` stay beside `input` and `output` for scripts written before.
        const names = { input: argv.backup, output: argv.target, backup: argv.backup, target: argv.target };
        printJson({ ...names, ...(to === undefined ? {} : { format: to }), ...result, warnings });
      } else printLine(`restored ${argv.backup} -> ${argv.target}${to === undefined ? '' : ` (${to})`}`);
    } finally {
      progress.stop();
      await source.close();
    }
  }),
};

/** A folder backup (a complete bundle with a manifest), opened read-only. */
async function openFolderBackup(
  path: string,
  onWarning: WarningSink,
  password: ReturnType<typeof passwordSource>,
): Promise<{ device: BlockDevice; bandSizeBytes: number; encryption?: string }> {
  const manifest = await readManifest(path);
  const bundle = await SparseBundle.open(path, { readOnly: true, onWarning, password });
  return {
    device: bundle,
    bandSizeBytes: manifest.bandSizeBytes,
    ...(bundle.encryption === undefined ? {} : { encryption: bundle.encryption }),
  };
}

/**
 * The image format a target's extension names (`new.vmdk` restores as --to vmdk would), so a
 * target named like an image never becomes a bundle folder; one sbm cannot write is refused.
 */
function formatNamedBy(target: string): string | undefined {
  const image = imageExtensionOf(target);
  if (image === undefined) return undefined;
  if (image.exporter === undefined) {
    throw new SbmError(
      'SBM_USAGE',
      `${target}: sbm cannot write ${image.extension} images; restore to a .sparsebundle, ` +
        `or pass --to ${writableFormats()} (sbm export writes the same formats); nothing was written`,
      {
        path: target,
      },
    );
  }
  return image.exporter;
}

function keyBitsOf(encryption: string | undefined): 128 | 256 {
  return encryption === 'AES-128' ? 128 : 256;
}

async function isBundle(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
}
