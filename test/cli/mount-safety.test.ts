// `sbm mount` must not change what it should keep: a backup is served read-only unless
// --writable-backup says otherwise, and signals after the first never cut the shutdown (drain,
// flush, unlock) short.

import test, { type ExecutionContext } from 'ava';
import { type ResultPromise, execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import * as C from '../../lib/nbd/constants.js';
import { SBM_BIN, runSbm, seededBytes, tempDir } from '../helpers/tools.js';
import { request } from '../lib/nbd/nbd-frames.js';
import { RawClient } from '../lib/nbd/raw-client.js';

const MIB = 1024 * 1024;

interface Mounted {
  child: ResultPromise;
  report: { socket: string; readOnly: boolean };
  stderr: () => string;
}

/** `sbm mount SOURCE --socket S --json ...` as a child; resolves once its JSON report is complete. */
async function startMount(t: ExecutionContext, source: string, socket: string, extra: string[] = []): Promise<Mounted> {
  const child = execa('node', [SBM_BIN, 'mount', source, '--socket', socket, '--json', ...extra], {
    reject: false,
    env: { NO_COLOR: '1' },
  });
  t.teardown(() => {
    if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
  });
  let output = '';
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const report = await new Promise<Mounted['report']>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sbm mount not ready: ${output} ${errors}`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      try {
        const parsed = JSON.parse(output) as Mounted['report'];
        clearTimeout(timer);
        resolve(parsed);
      } catch {
        // not complete yet
      }
    });
    void child.then((result) => reject(new Error(`sbm mount exited ${result.exitCode}: ${errors}`)));
  });
  return { child, report, stderr: () => errors };
}

async function writeThrough(client: RawClient, offset: number, data: Buffer, cookie: bigint): Promise<number> {
  client.send(request(C.NBD_CMD_WRITE, 0, cookie, offset, data.length, data));
  return (await client.simpleReply()).error;
}

test('a backup mounts read-only: writes get EPERM and the backup still verifies; --writable-backup opts in', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(disk, { sizeBytes: 8 * MIB, bandSizeBytes: MIB });
  await bundle.write(0, randomBytes(2 * MIB));
  await bundle.close();
  const backed = await runSbm(['backup', disk, join(dir, 'dest'), '--json']);
  t.is(backed.exitCode, 0, backed.stderr);
  const backup = JSON.parse(backed.stdout).path as string;

  const mount = await startMount(t, backup, join(dir, 'nbd.sock'));
  t.is(mount.report.readOnly, true, 'served read-only without being asked');
  const client = await RawClient.connect({ socketPath: mount.report.socket });
  await client.handshake();
  t.is(await writeThrough(client, 0, Buffer.alloc(4096, 0x5a), 1n), C.NBD_EPERM);
  client.destroy();
  mount.child.kill('SIGTERM');
  t.is((await mount.child).exitCode, 0, mount.stderr());
  const verified = await runSbm(['verify', backup]);
  t.is(verified.exitCode, 0, verified.stdout + verified.stderr);

  const writable = await startMount(t, backup, join(dir, 'nbd2.sock'), ['--writable-backup']);
  t.is(writable.report.readOnly, false, '--writable-backup serves it read-write');
  writable.child.kill('SIGTERM');
  t.is((await writable.child).exitCode, 0, writable.stderr());
});

test('a second SIGTERM during shutdown is absorbed: the mount drains, flushes and unlocks, and exits cleanly', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const created = await SparseBundle.create(disk, { sizeBytes: 64 * MIB, bandSizeBytes: MIB });
  await created.close();
  const mount = await startMount(t, disk, join(dir, 'nbd.sock'));
  const data = seededBytes(MIB, 17);
  const writer = await RawClient.connect({ socketPath: mount.report.socket });
  await writer.handshake();
  t.is(await writeThrough(writer, 3 * MIB, data, 1n), 0);
  // A client that asked for data and stopped reading its replies holds the drain open: the
  // shutdown is certainly still running when the second signal comes.
  const slow = await RawClient.connect({ socketPath: mount.report.socket });
  await slow.handshake();
  slow.socket.pause();
  for (let cookie = 0; cookie < 8; cookie++) slow.send(request(C.NBD_CMD_READ, 0, BigInt(cookie), cookie * 8 * MIB, 8 * MIB));
  await sleep(300);
  mount.child.kill('SIGTERM');
  await sleep(200);
  mount.child.kill('SIGTERM');
  await sleep(300);
  t.is(mount.child.exitCode, null, 'still shutting down after the second SIGTERM');
  slow.destroy();
  writer.destroy();
  const result = await mount.child;
  t.is(result.exitCode, 0, mount.stderr());
  t.is(result.signal, undefined);
  t.regex(mount.stderr(), /SIGTERM again: still shutting down/);
  // The lock is free (a read-write open succeeds) and the write is there.
  const reopened = await SparseBundle.open(disk);
  try {
    t.true((await reopened.read(3 * MIB, MIB)).equals(data));
  } finally {
    await reopened.close();
  }
});

test('a third signal during shutdown forces the exit and says what is left undone', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const created = await SparseBundle.create(disk, { sizeBytes: 64 * MIB, bandSizeBytes: MIB });
  await created.write(0, seededBytes(MIB, 3));
  await created.close();
  const mount = await startMount(t, disk, join(dir, 'nbd.sock'));
  const slow = await RawClient.connect({ socketPath: mount.report.socket });
  await slow.handshake();
  slow.socket.pause();
  for (let cookie = 0; cookie < 8; cookie++) slow.send(request(C.NBD_CMD_READ, 0, BigInt(cookie), cookie * 8 * MIB, 8 * MIB));
  await sleep(300);
  for (let signal = 0; signal < 3; signal++) {
    mount.child.kill('SIGTERM');
    await sleep(150);
  }
  const result = await mount.child;
  slow.destroy();
  t.is(result.exitCode, 143, mount.stderr());
  t.regex(mount.stderr(), /exiting now; left undone: drain and flush, unlock/);
});
