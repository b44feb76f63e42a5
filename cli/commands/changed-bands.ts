// sbm changed-bands <bundle> --since <token|snapshot|time>: the bands to copy for an incremental
// backup, as paths for rsync --files-from / tar -T / xargs, plus the token to use next time
// (stderr, or in --json), taken at the same quiet point so a token -> backup -> token loop
// never misses a write. Deleted bands are listed too, so a mirror can delete them. Works on a
// bundle `sbm mount` serves, through its control channel.

import { writeFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { openBundleOperations } from '../../lib/control/open-bundle-operations.js';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { isNoSpace } from '../../lib/tracking/tracking-file.js';
import type { AuditMode, ChangedBand } from '../../lib/tracking/tracker-types.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, strictOption, warningSink } from '../command-kit.js';
import { passwordOption, passwordSource } from '../password-input.js';
import { type LeanOptions, leanCommand } from '../lean-parse.js';

interface ChangedBandsArgs extends GlobalOptions {
  bundle: string;
  since: string;
  relative: boolean;
  null: boolean;
  ranges: boolean;
  audit: AuditMode;
  tokenFile?: string;
}

/** Shared by yargs and the lean fast path (cli/lean-parse.ts) that backup scripts' calls take. */
const CHANGED_BANDS_OPTIONS = {
  since: { type: 'string', demandOption: true, describe: 'token (sbm1:...), snapshot name or ISO-8601 time' },
  relative: { type: 'boolean', default: false, describe: 'print paths relative to the bundle (bands/<n>)' },
  null: { alias: '0', type: 'boolean', default: false, describe: 'end each path with NUL instead of newline' },
  ranges: { type: 'boolean', default: false, describe: 'print virtual byte ranges "<offset> <length>" instead of paths' },
  audit: {
    type: 'string',
    choices: ['auto', 'full', 'directory'],
    default: 'auto',
    describe: "stat audit for edits behind sbm's back: full = stat every band; directory = only when bands/ changed",
  },
  'token-file': { type: 'string', describe: 'also write the next token to this file' },
  ...jsonOption,
  ...strictOption,
  ...passwordOption,
} as const satisfies LeanOptions;

export const changedBandsCommand: CommandModule<object, ChangedBandsArgs> = {
  command: 'changed-bands <bundle>',
  describe: 'list bands changed since a token, snapshot or time (exit 10: full backup required)',
  builder: (yargs) =>
    yargs.positional('bundle', { type: 'string', demandOption: true, describe: 'a sparse bundle' }).options(CHANGED_BANDS_OPTIONS),
  handler: action(async (argv) => {
    if (argv.ranges && (argv.relative || argv.null))
      throw new SbmError('SBM_USAGE', '--ranges prints byte ranges; it does not combine with --relative or --null');
    const warnings: SbmWarning[] = [];
    // Neither command asks which bands exist: skip listing bands/ (O(bands)) at open.
    const bundle = await openBundleOperations(argv.bundle, {
      onWarning: warningSink(argv, warnings),
      password: passwordSource(argv),
      strictWarnings: argv.strict === true,
      deferBandListing: true,
    });
    try {
      const { sinceKind, bandSizeBytes, report } = await bundle.changedBandsSince(argv.since, argv.audit);
      if (argv.tokenFile !== undefined && report.token !== undefined) await writeTokenFile(argv.tokenFile, report.token);
      if (argv.json) {
        printJson({
          input: argv.bundle,
          since: report.since,
          sinceKind,
          token: report.token,
          bandSizeBytes,
          audit: report.audit,
          bandCount: report.bands.length,
          totalBytes: report.totalBytes,
          bands: report.bands.map((band) => ({
            bandIndex: band.bandIndex,
            index: band.bandIndex,
            path: band.path,
            relativePath: band.relativePath,
            offset: band.offset,
            length: band.length,
            deleted: band.deleted,
            foreign: band.foreign,
          })),
          ranges: mergeRanges(report.bands),
          warnings,
        });
        return;
      }
      const lines = argv.ranges
        ? mergeRanges(report.bands).map((range) => `${range.offset} ${range.length}`)
        : report.bands.map((band) => (argv.relative ? band.relativePath : band.path));
      const end = argv.null ? '\0' : '\n';
      process.stdout.write(lines.map((line) => `${line}${end}`).join(''));
      if (report.token !== undefined) process.stderr.write(`sbm: next token: ${report.token}\n`);
    } finally {
      await bundle.close();
    }
  }),
};

/** A full filesystem is SBM_NO_SPACE (the token given to --since stays valid), never an internal error. */
async function writeTokenFile(path: string, token: string): Promise<void> {
  try {
    await writeFile(path, `${token}\n`);
  } catch (error) {
    if (isNoSpace(error)) {
      throw new SbmError(
        'SBM_NO_SPACE',
        `cannot write the next token to ${path}: the filesystem is full (the --since token is still valid)`,
        { path },
        { cause: error },
      );
    }
    throw fromSystemError(error, 'cannot write the next token', path);
  }
}

function mergeRanges(bands: readonly ChangedBand[]): Array<{ offset: number; length: number }> {
  const ranges: Array<{ offset: number; length: number }> = [];
  for (const band of bands) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last.offset + last.length === band.offset) last.length += band.length;
    else ranges.push({ offset: band.offset, length: band.length });
  }
  return ranges;
}

export const changedBandsLean = leanCommand(changedBandsCommand, CHANGED_BANDS_OPTIONS);
