// Exposes a served NBD export as a file MOUNTPOINT/disk through nbdfuse (libnbd), so it can be
// attached to a loop device. nbdfuse stays in the foreground as our child; it signals readiness
// by writing its pidfile, and exits by itself once `fusermount3 -u MOUNTPOINT` unmounts it.
// Only the pid spawned here is ever signalled.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { debugLog } from '../debug-log.js';

import { SbmError, fromSystemError } from '../errors.js';

const debug = debugLog('sbm:nbd');
const READY_TIMEOUT_MS = 15_000;
const EXIT_TIMEOUT_MS = 10_000;

export interface FuseMountOptions {
  readonly mountDir: string;
  /** Connect over this Unix socket, or over TCP host/port. */
  readonly socketPath?: string;
  readonly host?: string;
  readonly port?: number;
  readonly readOnly: boolean;
  /** Name of the file inside mountDir (default "disk"). */
  readonly fileName?: string;
}

export interface FuseMount {
  /** The file that is the disk. */
  readonly filePath: string;
  readonly pid: number;
  /** Unmounts (fusermount3 -u) and waits for nbdfuse to exit. Idempotent. */
  unmount(): Promise<void>;
}

export async function fuseMount(options: FuseMountOptions): Promise<FuseMount> {
  await mkdir(options.mountDir, { recursive: true }).catch((error) => {
    throw fromSystemError(error, 'cannot create the FUSE mount point', options.mountDir);
  });
  const scratch = await mkdtemp(join(tmpdir(), 'sbm-fuse-'));
  const pidFile = join(scratch, 'nbdfuse.pid');
  const fileName = options.fileName ?? 'disk';
  const args = ['-P', pidFile, ...(options.readOnly ? ['-r'] : []), join(options.mountDir, fileName)];
  if (options.socketPath !== undefined) args.push('--unix', options.socketPath);
  else args.push('--tcp', options.host ?? '127.0.0.1', String(options.port));
  debug('nbdfuse %o', args);
  const child = spawn('nbdfuse', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  try {
    await waitReady(child, exited, pidFile, () => stderr);
  } catch (error) {
    if (child.exitCode === null && child.pid !== undefined) child.kill('SIGTERM');
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }
  let unmounting: Promise<void> | undefined;
  return {
    filePath: join(options.mountDir, fileName),
    pid: child.pid as number,
    unmount: () => {
      unmounting ??= (async () => {
        if (child.exitCode === null) await fusermount(options.mountDir);
        const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), EXIT_TIMEOUT_MS).unref());
        if ((await Promise.race([exited, timer])) === 'timeout') {
          debug('nbdfuse pid %d did not exit after unmount; sending SIGTERM', child.pid);
          child.kill('SIGTERM');
          await exited;
        }
        await rm(scratch, { recursive: true, force: true });
      })();
      return unmounting;
    },
  };
}

async function waitReady(child: ChildProcess, exited: Promise<number | null>, pidFile: string, stderr: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  while (Date.now() < deadline) {
    if (gone) throw new SbmError('SBM_IO', `nbdfuse exited before it was ready (status ${child.exitCode}): ${stderr().trim()}`);
    const pid = await readFile(pidFile, 'utf8').catch(() => '');
    if (pid.trim() !== '') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new SbmError('SBM_IO', `nbdfuse was not ready after ${READY_TIMEOUT_MS / 1000} s: ${stderr().trim()}`);
}

async function fusermount(mountDir: string): Promise<void> {
  const child = spawn('fusermount3', ['-u', mountDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', resolve);
    child.once('error', () => resolve(-1));
  });
  if (code !== 0) throw new SbmError('SBM_IO', `fusermount3 -u ${mountDir} failed: ${stderr.trim() || `status ${code}`}`);
}
