// `sbm mount` as a user runs it: the built CLI as a child process, the URI it prints used by
// nbdinfo, then SIGTERM to that child's pid: the socket goes away and the bundle lock is free.

import test, { type ExecutionContext } from 'ava';
import { type ResultPromise, execa } from 'execa';
import { readFile, readdir, readlink, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../lib/errors.js';
import { SBM_BIN, requireTool, runSbm, seededBytes, tempDir } from '../helpers/tools.js';
import * as C from '../../lib/nbd/constants.js';
import { request } from '../lib/nbd/nbd-frames.js';
import { RawClient } from '../lib/nbd/raw-client.js';
import { BundleSession } from '../../lib/session/bundle-session.js';

const MIB = 1024 * 1024;

interface Mounted {
  child: ResultPromise;
  output: string;
}

/** Starts `sbm mount ...` and resolves once stdout holds `ready(output)`; killed in teardown. */
async function startMount(t: ExecutionContext, args: string[], ready: (output: string) => boolean): Promise<Mounted> {
  const child = execa('node', [SBM_BIN, 'mount', ...args], { reject: false, env: { NO_COLOR: '1' } });
  t.teardown(() => {
    if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sbm mount not ready: ${output}`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (ready(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void child.then((result) => reject(new Error(`sbm mount exited ${result.exitCode}: ${String(result.stderr)}`)));
  });
  return { child, output };
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

async function makeBundle(t: ExecutionContext): Promise<string> {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 32 * MIB });
  await bundle.write(8 * MIB, seededBytes(4096, 5));
  await bundle.close();
  return path;
}

test('sbm mount --json: nbdinfo sees the bundle; SIGTERM removes the socket and frees the lock', async (t) => {
  await requireTool(t, 'nbdinfo');
  const bundlePath = await makeBundle(t);
  const { child, output } = await startMount(t, [bundlePath, '--json'], parsesAsJson);
  const info = JSON.parse(output) as { uri: string; socket: string; exportName: string; readOnly: boolean; sizeBytes: number };
  t.like(info, { exportName: 'vm', readOnly: false, sizeBytes: 32 * MIB });
  t.is(info.uri, `nbd+unix:///vm?socket=${info.socket}`);
  const nbdinfo = JSON.parse((await execa('nbdinfo', ['--json', info.uri])).stdout) as { exports: Array<Record<string, unknown>> };
  t.like(nbdinfo.exports[0], { 'export-name': 'vm', 'export-size': 32 * MIB, is_read_only: false });
  const busy = await SparseBundle.open(bundlePath).catch((error: unknown) => error);
  t.true(isSbmError(busy, 'SBM_LOCKED'), 'the bundle is locked while mounted');

  process.kill(child.pid as number, 'SIGTERM');
  const result = await child;
  t.is(result.exitCode, 0, String(result.stderr));
  await t.throwsAsync(stat(info.socket));
  await t.throwsAsync(stat(dirname(info.socket)));
  const reopened = await SparseBundle.open(bundlePath);
  t.deepEqual(reopened.bandsPresent(), [1]);
  await reopened.close();
});

test('sbm mount --socket --name prints the URI line; SIGINT stops it too', async (t) => {
  await requireTool(t, 'nbdinfo');
  const bundlePath = await makeBundle(t);
  const socket = join(dirname(bundlePath), 'my.sock');
  const { child, output } = await startMount(t, [bundlePath, '--socket', socket, '--name', 'disk0'], (text) => text.includes('\n'));
  t.is(output.split('\n')[0], `nbd+unix:///disk0?socket=${socket}`);
  t.is((await execa('nbdinfo', ['--size', output.split('\n')[0] as string])).stdout.trim(), String(32 * MIB));
  process.kill(child.pid as number, 'SIGINT');
  t.is((await child).exitCode, 0);
  await t.throwsAsync(stat(socket));
});

test('a raw image is served read-only over TCP with --port 0', async (t) => {
  await requireTool(t, 'nbdinfo');
  const dir = await tempDir(t);
  const image = join(dir, 'disk.img');
  await writeFile(image, seededBytes(2 * MIB, 9));
  const { child, output } = await startMount(t, [image, '--port', '0', '--json'], parsesAsJson);
  const info = JSON.parse(output) as { uri: string; port: number; readOnly: boolean };
  t.true(info.readOnly);
  t.is(info.uri, `nbd://127.0.0.1:${info.port}/disk`);
  t.is((await execa('nbdinfo', ['--is', 'read-only', info.uri], { reject: false })).exitCode, 0);
  const copy = join(dir, 'copy.img');
  await execa('nbdcopy', [info.uri, copy]);
  t.true((await readFile(copy)).equals(await readFile(image)));
  process.kill(child.pid as number, 'SIGTERM');
  t.is((await child).exitCode, 0);
});

test('sbm mount refuses remote hosts without --allow-remote and unknown snapshots', async (t) => {
  const bundlePath = await makeBundle(t);
  const remote = await runSbm(['mount', bundlePath, '--port', '0', '--host', '0.0.0.0']);
  t.is(remote.exitCode, 2);
  t.regex(String(remote.stderr), /SBM_USAGE: refusing to listen on 0\.0\.0\.0/);
  const snapshot = await runSbm(['mount', bundlePath, '--snapshot', 'daily']);
  t.is(snapshot.exitCode, 1);
  t.regex(String(snapshot.stderr), /SBM_NOT_FOUND: no snapshot named "daily"/);
  // Neither attempt left the bundle locked.
  await (await SparseBundle.open(bundlePath)).close();
  t.pass();
});

test('sbm mount --snapshot serves the snapshot read-only while the live bundle changes', async (t) => {
  await requireTool(t, 'nbdinfo');
  await requireTool(t, 'nbdcopy');
  const bundlePath = await makeBundle(t);
  const live = await SparseBundle.open(bundlePath);
  await new BundleSession(live).snapshots.create('daily');
  await live.write(8 * MIB, seededBytes(4096, 6));
  await live.write(20 * MIB, seededBytes(4096, 7));
  // The live bundle stays open read-write (exclusive lock) while its snapshot is served.
  t.teardown(() => live.close());
  const { child, output } = await startMount(t, [bundlePath, '--snapshot', 'daily', '--json'], parsesAsJson);
  const info = JSON.parse(output) as { uri: string; exportName: string; readOnly: boolean };
  t.like(info, { exportName: 'vm-daily', readOnly: true });
  t.is((await execa('nbdinfo', ['--is', 'read-only', info.uri], { reject: false })).exitCode, 0);
  const copy = join(dirname(bundlePath), 'daily.raw');
  await execa('nbdcopy', [info.uri, copy]);
  const bytes = await readFile(copy);
  t.true(bytes.subarray(8 * MIB, 8 * MIB + 4096).equals(seededBytes(4096, 5)), 'the snapshot holds the old data');
  t.true(bytes.subarray(20 * MIB, 20 * MIB + 4096).every((byte) => byte === 0));
  const write = await execa('qemu-io', ['-f', 'raw', '-c', 'write -P 1 0 512', info.uri], { reject: false });
  t.regex(write.stdout + write.stderr, /read-only|not permitted|Permission|Operation not permitted/i);
  process.kill(child.pid as number, 'SIGTERM');
  t.is((await child).exitCode, 0);
});

test('sbm mount --fuse exposes DIR/disk and unmounts it on SIGTERM', async (t) => {
  await requireTool(t, 'nbdfuse');
  await requireTool(t, 'fusermount3');
  const bundlePath = await makeBundle(t);
  const fuseDir = join(dirname(bundlePath), 'fuse');
  const { child, output } = await startMount(t, [bundlePath, '--fuse', fuseDir, '--json'], parsesAsJson);
  t.teardown(() => execa('fusermount3', ['-u', fuseDir], { reject: false }).then(() => undefined));
  const info = JSON.parse(output) as { fuseFile: string };
  t.is(info.fuseFile, join(fuseDir, 'disk'));
  t.is((await stat(info.fuseFile)).size, 32 * MIB);
  const head = Buffer.alloc(4096);
  const handle = await import('node:fs/promises').then((fs) => fs.open(info.fuseFile, 'r'));
  await handle.read(head, 0, 4096, 8 * MIB);
  await handle.close();
  t.true(head.equals(seededBytes(4096, 5)));
  process.kill(child.pid as number, 'SIGTERM');
  t.is((await child).exitCode, 0);
  const mounts = await readFile('/proc/mounts', 'utf8');
  t.false(mounts.includes(fuseDir), 'the FUSE mount is gone');
});

test('sbm mount keeps more band files open than the engine default, so I/O across many bands does not reopen them', async (t) => {
  await requireTool(t, 'nbdcopy');
  const dir = await tempDir(t);
  const bundlePath = join(dir, 'wide.sparsebundle');
  const bundle = await SparseBundle.create(bundlePath, { sizeBytes: 100 * MIB, bandSizeBytes: MIB });
  for (let band = 0; band < 100; band++) await bundle.write(band * MIB, seededBytes(4096, band));
  await bundle.close();
  const { child, output } = await startMount(t, [bundlePath, '--json'], parsesAsJson);
  const info = JSON.parse(output) as { uri: string; pid: number };
  await execa('nbdcopy', [info.uri, 'null:']);
  const fds = await readdir(`/proc/${info.pid}/fd`);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${info.pid}/fd/${fd}`).catch(() => '')));
  const bandFiles = targets.filter((target) => target.startsWith(join(bundlePath, 'bands')));
  t.is(bandFiles.length, 100, 'every band read stays open (the engine default would have kept 64)');
  process.kill(child.pid as number, 'SIGTERM');
  t.is((await child).exitCode, 0);
});

function rssMiB(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((status) => Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
}

test(
  'sbm mount stays under 256 MiB RSS while 63 clients leave six 32 MiB READs each unread, ' + 'and still serves another client',
  async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'vm.sparsebundle');
    await (await SparseBundle.create(path, { sizeBytes: 1024 * MIB })).close();
    const socket = join(dir, 'nbd.sock');
    const { child } = await startMount(t, [path, '--socket', socket], (text) => text.includes('\n'));
    const pid = child.pid as number;
    let peak = await rssMiB(pid);
    const sampler = setInterval(
      () =>
        void rssMiB(pid).then(
          (rss) => (peak = Math.max(peak, rss)),
          () => undefined,
        ),
      20,
    );
    t.teardown(() => clearInterval(sampler));
    const flood: RawClient[] = [];
    t.teardown(() => {
      for (const raw of flood) raw.destroy();
    });
    for (let index = 0; index < 63; index++) {
      const raw = await RawClient.connect({ socketPath: socket });
      flood.push(raw);
      await raw.handshake();
      raw.socket.pause();
      raw.send(Buffer.concat(Array.from({ length: 6 }, (_, at) => request(C.NBD_CMD_READ, 0, BigInt(at), at * 32 * MIB, 32 * MIB))));
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const other = await RawClient.connect({ socketPath: socket });
    t.teardown(() => other.destroy());
    await other.handshake();
    other.send(request(C.NBD_CMD_READ, 0, 1n, 0, 64 * 1024));
    t.like(await other.simpleReply(64 * 1024), { cookie: 1n, error: 0 }, 'another client is served during the flood');
    clearInterval(sampler);
    t.true(peak < 256, `peak RSS ${peak.toFixed(0)} MiB`);
    for (const raw of flood) raw.destroy();
    process.kill(pid, 'SIGTERM');
    t.is((await child).exitCode, 0);
  },
);

test('sbm mount: 100 clients that finish the handshake and sit idle do not lock out the next one', async (t) => {
  const path = await makeBundle(t);
  const socket = join(dirname(path), 'nbd.sock');
  const { child } = await startMount(t, [path, '--socket', socket], (text) => text.includes('\n'));
  const idle: RawClient[] = [];
  t.teardown(() => {
    for (const raw of idle) raw.destroy();
  });
  for (let index = 0; index < 100; index++) {
    const raw = await RawClient.connect({ socketPath: socket });
    idle.push(raw);
    await raw.handshake();
  }
  const next = await RawClient.connect({ socketPath: socket });
  t.teardown(() => next.destroy());
  await next.handshake();
  next.send(request(C.NBD_CMD_READ, 0, 1n, 8 * MIB, 4096));
  const reply = await next.simpleReply(4096);
  t.is(reply.error, 0);
  t.true(reply.data.equals(seededBytes(4096, 5)));
  t.true(
    idle.every((raw) => !raw.ended),
    'below the limit nobody is evicted',
  );
  process.kill(child.pid as number, 'SIGTERM');
  t.is((await child).exitCode, 0);
});
