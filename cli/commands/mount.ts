// `sbm mount`: serves a bundle (read-write unless --read-only; a backup read-only unless
// --writable-backup), one of its snapshots (read-only), a backup in an S3 repository (read-only:
// chunks are fetched as clients read them, through a bounded cache) or any image sbm reads
// (read-only)
// over NBD, prints the URI, and runs until SIGINT/SIGTERM. Start order: open the device (takes the
// bundle lock) -> publish the control channel (.sbm/control.json) -> listen for NBD -> FUSE ->
// print the URI. Shutdown order: unmount FUSE (it is a client) -> stop the control channel
// (removes .sbm/control.json) -> stop accepting and drain -> flush -> close the device (releases
// the bundle lock) -> remove the socket. Signals after the first never cut that short
// (cli/shutdown-signals.ts).

import { basename, join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';

import type { BlockDevice } from '../../lib/block-device.js';
import { type ControlServerHandle, serveControl } from '../../lib/control/serve-control.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { bundlePaths } from '../../lib/bundle/bundle-paths.js';
import { SbmError, isSbmError } from '../../lib/errors.js';
import { type FuseMount, fuseMount } from '../../lib/nbd/fuse-mount.js';
import { type NbdServerHandle, isLoopbackHost, serveNbd } from '../../lib/nbd/serve-nbd.js';
import { SNAPSHOTS_DIR, SNAPSHOT_SUFFIX } from '../../lib/snapshots/snapshot-manager.js';
import type { SbmWarning, WarningSink } from '../../lib/warnings.js';
import { detectFormat, probeImage } from '../../formats/index.js';
import { backupHolding } from '../../lib/fs/backup-guard.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { MAX_DISK_INDEX, checkOptions, integer } from '../option-values.js';
import { passwordSource } from '../password-input.js';
import type { PasswordSource } from '../../lib/bundle/bundle-encryption.js';
import { shutdownSignals } from '../shutdown-signals.js';
import { isS3Url } from '../../lib/backup/s3/s3-location.js';
import { endpointOption, s3Access } from '../s3-options.js';

/**
 * Band files a mount keeps open (the engine's default is 64, i.e. 512 MiB of 8 MiB bands). A
 * server's clients read and write anywhere: with fewer open handles than the bands in use, every
 * request to another band paid an open, an fstat and a close through the thread pool (4 KiB reads
 * striding across a 1 GiB disk took 2.5x qemu-nbd's time). 512 handles cover 4 GiB of bands and
 * stay well inside the usual 1024-descriptor soft limit, with room for connections.
 */
const MOUNT_MAX_OPEN_BANDS = 512;

interface MountArgs extends GlobalOptions {
  source: string;
  socket?: string;
  port?: string;
  host?: string;
  allowRemote: boolean;
  readOnly: boolean;
  writableBackup: boolean;
  snapshot?: string;
  name?: string;
  fuse?: string;
  format?: string;
  disk?: string;
  endpoint?: string;
}

export const mountCommand: CommandModule<GlobalOptions, MountArgs> = {
  command: 'mount <source>',
  describe: 'serve a bundle or image over NBD until SIGINT/SIGTERM',
  builder: (yargs: Argv<GlobalOptions>) =>
    yargs
      .positional('source', {
        type: 'string',
        demandOption: true,
        describe: 'sparse bundle, or an image or S3 backup (s3://BUCKET/PREFIX/SET/NAME) to serve read-only',
      })
      .options({
        socket: { type: 'string', describe: 'Unix socket path (default: a new private directory under the temp dir)' },
        port: { type: 'string', describe: 'listen on TCP instead (0 = any free port)' },
        host: { type: 'string', describe: 'TCP address (default 127.0.0.1)' },
        'allow-remote': { type: 'boolean', default: false, describe: 'allow a non-loopback --host (NBD has no authentication)' },
        'read-only': { type: 'boolean', default: false, describe: 'serve read-only (writes get EPERM)' },
        'writable-backup': {
          type: 'boolean',
          default: false,
          describe:
            'serve a backup (a bundle with .sbm/manifest.json) read-write; writes make it disagree with its manifest (sbm verify fails)',
        },
        snapshot: { type: 'string', describe: 'serve this snapshot of the bundle, read-only' },
        name: { type: 'string', describe: 'export name (default: the source name without extension)' },
        fuse: { type: 'string', describe: 'also expose the disk as the file DIR/disk through nbdfuse' },
        format: { type: 'string', describe: 'skip detection and serve the input as this format (read-only), e.g. raw' },
        disk: { type: 'string', describe: 'which disk of a .pvm machine or an OVA/OVF package (default: the first, hdd0)' },
        ...endpointOption,
        ...jsonOption,
        ...strictOption,
      })
      .example('$0 mount vm.sparsebundle', 'serve on a Unix socket in a private directory; prints nbd+unix:///vm?socket=...')
      .example('$0 mount vm.sparsebundle --port 10809 --json', 'serve on 127.0.0.1:10809')
      .example('$0 mount vm.sparsebundle --snapshot daily --fuse /mnt/vm', 'a snapshot, read-only, as the file /mnt/vm/disk')
      .example('$0 mount s3://my-bucket/sbm/vm/2026-11-23-091500', 'a backup in S3, read-only: boot from it before any restore')
      .conflicts('socket', 'port')
      .conflicts('socket', 'host') as unknown as Argv<MountArgs>,
  handler: action(async (argv: MountArgs) => {
    const { port } = checkOptions(argv, { port: integer(0, 65_535) });
    // Before anything is opened: a signal at any point from here on leads to a clean shutdown.
    const signals = shutdownSignals();
    const warnings: SbmWarning[] = [];
    if (argv.host !== undefined && argv.port === undefined) throw new SbmError('SBM_USAGE', '--host needs --port');
    if (argv.host !== undefined && argv.allowRemote && !isLoopbackHost(argv.host)) {
      warningSink(
        argv,
        warnings,
      )({
        code: 'SBM_NBD_REMOTE',
        message: `${argv.host} exposes the disk without authentication to anyone who can reach it`,
      });
    }
    const device = await openSource(argv, warnings);
    let server: NbdServerHandle | undefined;
    let fuse: FuseMount | undefined;
    let control: ControlServerHandle | undefined;
    try {
      // backup/token/changed-bands/snapshot of this bundle reach it through the control channel.
      // It is published (control.json written) before the NBD socket exists: a command that sees
      // the mount's socket or URI must find the control channel too, not a lock it cannot take.
      // Without it the mount still works; those commands then fail with SBM_LOCKED as before.
      if (device instanceof SparseBundle && !device.readOnly) {
        const onWarning = warningSink(argv, warnings);
        control = await serveControl(device, { onWarning }).catch((error: unknown) => {
          onWarning({ code: 'SBM_CONTROL', message: `no control channel: ${(error as Error).message}` });
          return undefined;
        });
      }
      server = await serveNbd(device, {
        name: argv.name ?? defaultExportName(argv.source, argv.snapshot),
        readOnly: argv.readOnly,
        socketPath: argv.socket,
        port,
        host: argv.host,
        allowRemote: argv.allowRemote,
      });
      if (argv.fuse !== undefined) {
        fuse = await fuseMount({
          mountDir: argv.fuse,
          socketPath: server.socketPath,
          host: server.host,
          port: server.port,
          readOnly: device.readOnly || argv.readOnly,
        });
      }
      report(argv, device, server, fuse, warnings);
      await signals.requested;
    } finally {
      signals.remaining([...(fuse === undefined ? [] : ['FUSE unmount']), 'drain and flush', 'unlock']);
      try {
        await fuse?.unmount().catch((error) => process.stderr.write(`sbm: warning SBM_FUSE_UNMOUNT: ${(error as Error).message}\n`));
        signals.finished('FUSE unmount');
        await control?.close();
        await server?.close();
        signals.finished('drain and flush');
      } finally {
        await device.close();
        signals.finished('unlock');
      }
    }
  }),
};

async function openSource(argv: MountArgs, warnings: SbmWarning[]): Promise<BlockDevice> {
  const onWarning = warningSink(argv, warnings);
  const password = passwordSource(argv);
  if (isS3Url(argv.source)) return openS3Source(argv);
  const probe = await probeImage(argv.source);
  if (argv.snapshot !== undefined) {
    if (!probe.isDirectory) throw new SbmError('SBM_USAGE', `--snapshot needs a sparse bundle; ${argv.source} is a file`);
    return openSnapshot(argv.source, argv.snapshot, onWarning, password);
  }
  // Detection first: a folder that is a Parallels disk or an OVF package, or a file in a format
  // sbm cannot read, is refused here with SBM_UNSUPPORTED instead of being served.
  const format = await detectFormat(argv.source, argv.format);
  if (format.name === 'sparsebundle') {
    // A backup is served read-only, as restic and borg mount theirs: one write would make it
    // disagree with its manifest, and even a read-write open adds tracking files to it.
    const readOnly = argv.readOnly || ((await backupHolding(argv.source)) !== undefined && !argv.writableBackup);
    return SparseBundle.open(argv.source, {
      readOnly,
      onWarning,
      maxOpenBands: MOUNT_MAX_OPEN_BANDS,
      allowBackupWrites: argv.writableBackup,
      password,
    });
  }
  const { disk } = checkOptions(argv, { disk: integer(0, MAX_DISK_INDEX) });
  return format.open(argv.source, { onWarning, disk });
}

/** A backup in an S3 repository: read-only whatever the options, holding the repository's lease. */
async function openS3Source(argv: MountArgs): Promise<BlockDevice> {
  const refused = [
    ['--snapshot', argv.snapshot !== undefined],
    ['--writable-backup', argv.writableBackup],
    ['--format', argv.format !== undefined],
    ['--disk', argv.disk !== undefined],
  ].find(([, given]) => given);
  if (refused !== undefined)
    throw new SbmError('SBM_USAGE', `${String(refused[0])} does not apply to an S3 backup (served read-only as it is)`);
  const { openS3Backup } = await import('../s3-actions.js'); // the AWS SDK loads only here
  return (await openS3Backup(argv.source, s3Access(argv), 'mount')).device;
}

/**
 * A snapshot is itself a bundle under .sbm/snapshots/; it is opened directly (shared lock on its
 * own lock file) so it can be served while the live bundle is mounted read-write elsewhere.
 */
async function openSnapshot(source: string, name: string, onWarning: WarningSink, password: PasswordSource): Promise<BlockDevice> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new SbmError('SBM_USAGE', `"${name}" is not a snapshot name`);
  const path = join(bundlePaths(source).sbm, SNAPSHOTS_DIR, `${name}${SNAPSHOT_SUFFIX}`);
  try {
    return await SparseBundle.open(path, { readOnly: true, onWarning, maxOpenBands: MOUNT_MAX_OPEN_BANDS, password });
  } catch (error) {
    if (isSbmError(error, 'SBM_NOT_FOUND')) throw new SbmError('SBM_NOT_FOUND', `no snapshot named "${name}" in ${source}`, { name });
    throw error;
  }
}

function defaultExportName(source: string, snapshot: string | undefined): string {
  if (snapshot !== undefined) return `${defaultExportName(source, undefined)}-${snapshot}`;
  if (isS3Url(source)) return source.replace(/\/+$/, '').split('/').slice(-2).join('-'); // <set>-<backup>
  return basename(source.replace(/\/+$/, '')).replace(/\.[^.]*$/, '');
}

function report(argv: MountArgs, device: BlockDevice, server: NbdServerHandle, fuse: FuseMount | undefined, warnings: SbmWarning[]): void {
  const readOnly = device.readOnly || argv.readOnly;
  if (argv.json) {
    printJson({
      input: argv.source,
      uri: server.uri,
      exportName: server.exportName,
      ...(server.socketPath === undefined ? { host: server.host, port: server.port } : { socket: server.socketPath }),
      sizeBytes: device.sizeBytes,
      readOnly,
      ...(fuse === undefined ? {} : { fuseFile: fuse.filePath }),
      pid: process.pid,
      warnings,
    });
  } else {
    printLine(server.uri);
    if (fuse !== undefined) printLine(`disk file: ${fuse.filePath}`);
    process.stderr.write(`sbm: serving ${argv.source}${readOnly ? ' read-only' : ''}; press Ctrl-C to stop\n`);
  }
}
