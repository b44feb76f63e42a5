// sbm backup <bundle> <dest>: an incremental, complete, openable backup of the disk. An unmounted
// bundle is opened read-write (the exclusive lock keeps every other writer out) and read directly,
// no snapshot needed; while `sbm mount` serves it, the mount takes a temporary snapshot for us
// (control channel) so its clients keep writing.

import type { CommandModule } from 'yargs';
import { createBackup } from '../../lib/backup/create-backup.js';
import { lockBackupSet } from '../../lib/backup/backup-set.js';
import { type ThinPolicy, type ThinResult, thinBackups } from '../../lib/backup/thin-backups.js';
import { openBundleOperations } from '../../lib/control/open-bundle-operations.js';
import { assertOutputOutsideInputs } from '../../lib/fs/output-inside-input.js';
import { formatSize } from '../../lib/size.js';
import type { SbmWarning, WarningSink } from '../../lib/warnings.js';
import { type ThinArgs, thinOptions, thinPolicyOf } from '../backup-options.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { counted } from '../plural.js';
import { newPassword, passwordOption, passwordSource } from '../password-input.js';
import { SbmError } from '../../lib/errors.js';
import { type LeanOptions, leanCommand } from '../lean-parse.js';
import { progressReporter } from '../progress.js';
import { isS3Url } from '../../lib/backup/s3/s3-location.js';
import { endpointOption } from '../s3-options.js';

interface BackupArgs extends GlobalOptions, ThinArgs {
  bundle: string;
  dest: string;
  copy: boolean;
  progress: boolean;
  endpoint?: string;
  encryption: boolean;
}

/** Shared by yargs and the lean fast path (cli/lean-parse.ts). */
const BACKUP_OPTIONS = {
  copy: { type: 'boolean', default: false, describe: 'copy unchanged bands instead of hard-linking them' },
  progress: { type: 'boolean', default: true, describe: 'progress on a TTY (--no-progress to hide)' },
  ...endpointOption,
  encryption: {
    type: 'boolean',
    default: false,
    describe: 'make a new S3 repository encrypted (AES-256-GCM; password from --stdinpass or a terminal prompt)',
  },
  ...thinOptions,
  ...jsonOption,
  ...strictOption,
  ...passwordOption,
} as const satisfies LeanOptions;

export const backupCommand: CommandModule<object, BackupArgs> = {
  command: 'backup <bundle> <dest>',
  describe: 'back up the disk to DEST/NAME/<time>.sparsebundle, copying only changed bands',
  builder: (yargs) =>
    yargs
      .positional('bundle', { type: 'string', demandOption: true, describe: 'the sparse bundle to back up (may be mounted)' })
      .positional('dest', {
        type: 'string',
        demandOption: true,
        describe: 'destination folder (holds one set per disk), or an S3 repository s3://BUCKET/PREFIX',
      })
      .options(BACKUP_OPTIONS)
      .example('$0 backup vm.sparsebundle /Volumes/Backup --keep-hourly 24 --keep-daily 30', 'back up, then thin')
      .example('$0 backup vm.sparsebundle s3://my-bucket/sbm', 'back up to S3, uploading only chunks the bucket lacks')
      .example(
        'printf %s "$PW" | $0 backup vm.sparsebundle s3://my-bucket/sbm --encryption --stdinpass',
        'into a new encrypted repository',
      ),
  handler: action(async (argv) => {
    // Every option is checked before anything is written, so a bad --max-bytes can never fail a
    // run after the backup was made.
    const policy = thinPolicyOf(argv);
    const warnings: SbmWarning[] = [];
    const onWarning = warningSink(argv, warnings);
    if (isS3Url(argv.dest)) {
      await backupBundleToS3(argv, policy, onWarning, warnings);
      return;
    }
    if (argv.encryption) {
      throw new SbmError(
        'SBM_USAGE',
        '--encryption applies to S3 repositories; a folder backup of an encrypted bundle is encrypted as the bundle is',
      );
    }
    // Before the bundle is opened (opening it read-write already writes in it); createBackup
    // checks the set folder itself again.
    await assertOutputOutsideInputs(argv.dest, [argv.bundle], {
      outputLabel: 'backup destination',
      inputLabel: 'source bundle',
      refuseInputInsideOutput: false,
    });
    const bundle = await openBundleOperations(argv.bundle, {
      onWarning,
      strictWarnings: argv.strict === true,
      password: passwordSource(argv),
    });
    try {
      const progress = progressReporter('backing up', argv.progress && !argv.json, { unit: 'bands', moved: 'copied' });
      const result = await createBackup(bundle.backupSource(), argv.dest, {
        copyMode: argv.copy,
        onWarning,
        onProgress:
          progress.onProgress === undefined
            ? undefined
            : ({ bandsDone, bandsTotal, bytesWritten }) =>
                progress.onProgress?.({ bytesDone: bandsDone, bytesTotal: bandsTotal, bytesWritten }),
      }).finally(() => progress.stop());
      const thinned = policy === undefined ? undefined : await thinSet(result.path.slice(0, result.path.lastIndexOf('/')), policy);
      if (argv.json) printJson({ input: argv.bundle, output: result.path, ...result, thinned, warnings });
      else {
        printLine(
          `backup ${result.path}: ${counted(result.bandsCopied, 'band')} copied, ${result.bandsLinked} linked, ` +
            `${formatSize(result.bytesWritten)} written in ${result.seconds.toFixed(2)} s (${result.mode})`,
        );
        if (thinned !== undefined && thinned.deleted.length > 0) printLine(`thinned: deleted ${thinned.deleted.join(', ')}`);
      }
    } finally {
      await bundle.close();
    }
  }),
};

async function backupBundleToS3(argv: BackupArgs, policy: ThinPolicy | undefined, onWarning: WarningSink, warnings: SbmWarning[]) {
  const { backupToS3 } = await import('../s3-actions.js'); // the AWS SDK loads only here
  // A new encrypted repository's password is asked twice at a terminal, before anything is
  // opened; the same answer unlocks an existing encrypted repository.
  let password = passwordSource(argv);
  if (argv.encryption) {
    const given = await newPassword(argv);
    if (given === undefined) {
      throw new SbmError('SBM_USAGE', '--encryption needs a password: pipe it with --stdinpass, or run at a terminal to be asked');
    }
    password = async () => given;
  }
  const bundle = await openBundleOperations(argv.bundle, {
    onWarning,
    strictWarnings: argv.strict === true,
    password: passwordSource(argv),
  });
  try {
    await backupToS3(bundle.backupSource(), {
      bundle: argv.bundle,
      dest: argv.dest,
      access: { ...(argv.endpoint === undefined ? {} : { endpoint: argv.endpoint }), password },
      encrypt: argv.encryption,
      json: argv.json === true,
      showProgress: argv.progress && !argv.json && process.stderr.isTTY,
      ...(policy === undefined ? {} : { policy }),
      onWarning,
      warnings,
    });
  } finally {
    await bundle.close();
  }
}

/** Thins under the set's lock, as `sbm thin` does: never while another run links bands to a backup it would delete. */
async function thinSet(setDir: string, policy: ThinPolicy): Promise<ThinResult> {
  const lock = await lockBackupSet(setDir);
  try {
    return await thinBackups(setDir, policy);
  } finally {
    await lock.release();
  }
}

export const backupLean = leanCommand(backupCommand, BACKUP_OPTIONS);
