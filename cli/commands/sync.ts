// sbm sync <disk> <bundle>: makes an existing bundle equal to a disk still in its hypervisor's
// format, writing only the bands that differ (through the engine: tracked, copy-on-write).

import type { CommandModule } from 'yargs';
import { openImage } from '../../formats/index.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { connectControl } from '../../lib/control/connect-control.js';
import { remoteSyncTarget } from '../../lib/control/remote-sync-target.js';
import { SbmError, isSbmError } from '../../lib/errors.js';
import { isLayered } from '../../lib/image-layers.js';
import { assertSameChainBelow, snapshotLayerPath } from '../../lib/sync/at-snapshot.js';
import { formatSize } from '../../lib/size.js';
import type { SbmWarning, WarningSink } from '../../lib/warnings.js';
import { type SyncResult, syncDisk } from '../../lib/sync/sync-disk.js';
import { type SyncTarget, localSyncTarget } from '../../lib/sync/sync-target.js';
import { passwordSource } from '../password-input.js';
import type { PasswordSource } from '../../lib/bundle/bundle-encryption.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { counted } from '../plural.js';
import { progressReporter } from '../progress.js';
import { shutdownSignals } from '../shutdown-signals.js';

interface SyncArgs extends GlobalOptions {
  disk: string;
  bundle: string;
  resize: boolean;
  full: boolean;
  'force-share': boolean;
  'at-snapshot'?: string;
  progress: boolean;
  format?: string;
  'allow-outside': boolean;
}

export const syncCommand: CommandModule<object, SyncArgs> = {
  command: 'sync <disk> <bundle>',
  describe: 'make an existing bundle equal to a disk image, writing only the bands that differ',
  builder: (yargs) =>
    yargs
      .positional('disk', { type: 'string', demandOption: true, describe: 'source disk (raw, VMDK chain, qcow2, VHD, VHDX, VDI)' })
      .positional('bundle', { type: 'string', demandOption: true, describe: 'bundle to keep in step (must exist)' })
      .options({
        resize: { type: 'boolean', default: false, describe: 'grow the bundle when the disk grew' },
        full: { type: 'boolean', default: false, describe: 'compare every band even when only newer layers need reading' },
        'force-share': { type: 'boolean', default: false, describe: 'read a disk its hypervisor has open for writing' },
        'at-snapshot': { type: 'string', describe: 'read the chain as of this VM snapshot (VMware .vmsd name, or a layer file name)' },
        progress: { type: 'boolean', default: true, describe: 'progress bar on a TTY (--no-progress to hide)' },
        format: { type: 'string', describe: 'skip detection and read the disk as this format' },
        'allow-outside': { type: 'boolean', default: false, describe: 'let descriptors name files outside their folder' },
        ...jsonOption,
        ...strictOption,
      })
      .example('$0 sync vm.vmwarevm/disk-000002.vmdk vm.sparsebundle', 'writes the bands that differ'),
  handler: action(async (argv) => {
    const warnings: SbmWarning[] = [];
    const onWarning = warningSink(argv, warnings);
    const signals = shutdownSignals();
    let interrupted = false;
    void signals.requested.then(() => {
      interrupted = true;
    });
    const password = passwordSource(argv);
    const openOptions = { format: argv.format, onWarning, allowOutside: argv['allow-outside'], password };
    let reader = await openImage(argv.disk, openOptions);
    let sourcePath = argv.disk;
    const atSnapshot = argv['at-snapshot'];
    if (atSnapshot !== undefined) {
      const chain = isLayered(reader) ? reader.layers() : [];
      try {
        sourcePath = await snapshotLayerPath(chain, atSnapshot);
        const frozen = await openImage(sourcePath, openOptions);
        await assertSameChainBelow(chain, sourcePath, frozen).catch(async (error: unknown) => {
          await frozen.close();
          throw error;
        });
        await reader.close();
        reader = frozen;
      } catch (error) {
        await reader.close();
        throw error;
      }
    }
    const progress = progressReporter('syncing', argv.progress && !argv.json);
    try {
      const bundle = await openSyncTarget(argv.bundle, onWarning, argv.strict === true, password);
      try {
        const result = await syncDisk(reader, bundle.target, {
          sourcePath,
          ...(reader.formatName === 'raw' ? { sourceFiles: [sourcePath] } : {}),
          resize: argv.resize,
          full: argv.full,
          forceShare: argv['force-share'],
          onWarning,
          onProgress: progress.onProgress,
          checkAborted: () => {
            if (interrupted) {
              throw new SbmError('SBM_INTERRUPTED', 'sync interrupted; the bands written so far are tracked as changes');
            }
          },
        });
        progress.stop();
        report(argv, sourcePath, result, warnings);
      } finally {
        await bundle.close();
      }
    } finally {
      progress.stop();
      await reader.close();
    }
  }),
};

/** The bundle held here, or through the control channel of the `sbm mount` that holds it. */
async function openSyncTarget(
  path: string,
  onWarning: WarningSink,
  strict: boolean,
  password: PasswordSource,
): Promise<{ target: SyncTarget; close(): Promise<void> }> {
  try {
    const bundle = await SparseBundle.open(path, { onWarning, password });
    return { target: localSyncTarget(bundle), close: () => bundle.close() };
  } catch (error) {
    // A mounted encrypted bundle needs no password here (the mount holds the key): SBM_ENCRYPTED too.
    if (!isSbmError(error, 'SBM_LOCKED') && !isSbmError(error, 'SBM_ENCRYPTED')) throw error;
    const client = await connectControl(path, { onWarning, strict });
    if (client === undefined) throw error;
    try {
      return { target: await remoteSyncTarget(client), close: () => client.close() };
    } catch (failure) {
      await client.close();
      throw failure;
    }
  }
}

function report(argv: SyncArgs, source: string, result: SyncResult, warnings: SbmWarning[]): void {
  if (argv.json) {
    printJson({
      input: argv.disk,
      output: argv.bundle,
      disk: argv.disk,
      ...(source === argv.disk ? {} : { source }),
      bundle: argv.bundle,
      ...result,
      warnings,
    });
    return;
  }
  const why = result.fullReason === undefined ? '' : ` (${result.fullReason})`;
  printLine(
    `synced ${source} -> ${argv.bundle}: ${result.mode} mode${why}, ${counted(result.bandsCompared, 'band')} compared, ` +
      `${result.bandsWritten} written, ${formatSize(result.bytesRead)} read in ${result.seconds.toFixed(2)} s`,
  );
}
