// Issue 6: back up a disk while it is being written through `sbm mount`. The built CLI mounts the
// bundle; qemu-io writes through NBD (a writer keeps writing band 3 during both backups); `sbm
// backup`, `sbm token` and `sbm changed-bands` reach the bundle through the mount's control
// channel. After the mount stops: both backups verify, the second is incremental, the first
// restores to exactly the bytes written before it was taken.

import test, { type ExecutionContext } from 'ava';
import { type ResultPromise, execa } from 'execa';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { SBM_BIN, requireTool, runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;
const DISK_BYTES = 32 * MIB;
const BAND_BYTES = 8 * MIB;
const BLOCK_BYTES = 64 * 1024;
const WRITER_OFFSET = 3 * BAND_BYTES;
const WRITER_PATTERN = 0x77;

interface Mounted {
  child: ResultPromise;
  info: { uri: string; socket: string; pid: number };
}

async function startMount(t: ExecutionContext, bundlePath: string): Promise<Mounted> {
  const child = execa('node', [SBM_BIN, 'mount', bundlePath, '--json'], { reject: false, env: { NO_COLOR: '1' } });
  t.teardown(() => {
    if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sbm mount not ready: ${output}`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      try {
        JSON.parse(output);
      } catch {
        return; // not the whole document yet
      }
      clearTimeout(timer);
      resolve();
    });
    void child.then((result) => reject(new Error(`sbm mount exited ${result.exitCode}: ${String(result.stderr)}`)));
  });
  return { child, info: JSON.parse(output) as Mounted['info'] };
}

/** Writes `pattern` at each [offset, length) through NBD and applies it to `expected`. */
async function qemuWrite(uri: string, writes: ReadonlyArray<[number, number, number]>, expected: Buffer): Promise<void> {
  const commands = writes.flatMap(([offset, length, pattern]) => ['-c', `write -P ${pattern} ${offset} ${length}`]);
  const result = await execa('qemu-io', ['-f', 'raw', ...commands, '-c', 'flush', uri], { reject: false });
  if (result.exitCode !== 0 || /error|fail/i.test(String(result.stdout)))
    throw new Error(`qemu-io failed: ${String(result.stdout)} ${String(result.stderr)}`);
  for (const [offset, length, pattern] of writes) expected.fill(pattern, offset, offset + length);
}

/** A qemu-io process writing band 3 over and over, only there, while a backup runs. */
function startWriter(uri: string): ResultPromise {
  const commands: string[] = [];
  for (let round = 0; round < 300; round++)
    commands.push('-c', `write -P ${WRITER_PATTERN} ${WRITER_OFFSET + (round % 128) * BLOCK_BYTES} ${BLOCK_BYTES}`);
  return execa('qemu-io', ['-f', 'raw', ...commands, uri], { reject: false });
}

async function sbmJson<T>(t: ExecutionContext, args: string[]): Promise<T> {
  const result = await runSbm([...args, '--json']);
  t.is(result.exitCode, 0, `sbm ${args.join(' ')}: ${String(result.stderr)}`);
  return JSON.parse(String(result.stdout)) as T;
}

interface BackupJson {
  path: string;
  mode: string;
  bandsCopied: number;
  bandsLinked: number;
}

test('backups, tokens and changed-bands of a bundle being written through sbm mount', async (t) => {
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const bundlePath = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'backups');
  await (await SparseBundle.create(bundlePath, { sizeBytes: DISK_BYTES, bandSizeBytes: BAND_BYTES })).close();
  const { child, info } = await startMount(t, bundlePath);
  const controlFile = JSON.parse(await readFile(join(bundlePath, '.sbm', 'control.json'), 'utf8')) as { pid: number; socket: string };
  t.is(controlFile.pid, info.pid);

  const expected = Buffer.alloc(DISK_BYTES);
  await qemuWrite(
    info.uri,
    [
      [0, 4 * MIB, 0x11],
      [12 * MIB, MIB, 0x22],
    ],
    expected,
  );
  const { token } = await sbmJson<{ token: string }>(t, ['token', bundlePath]);
  t.regex(token, /^sbm1:/);
  const before = Buffer.from(expected);

  const writer1 = startWriter(info.uri);
  const first = await sbmJson<BackupJson>(t, ['backup', bundlePath, dest]);
  t.is((await writer1).exitCode, 0);
  t.is(first.mode, 'full');

  await qemuWrite(
    info.uri,
    [
      [0, BLOCK_BYTES, 0x44],
      [20 * MIB, MIB, 0x33],
    ],
    expected,
  );
  const changed = await sbmJson<{ sinceKind: string; bands: Array<{ index: number; path: string }> }>(t, [
    'changed-bands',
    bundlePath,
    '--since',
    token,
  ]);
  t.is(changed.sinceKind, 'token');
  const changedIndexes = changed.bands.map((band) => band.index);
  t.true(
    [0, 2, 3].every((index) => changedIndexes.includes(index)),
    `changed: ${changedIndexes.join(',')}`,
  );
  t.false(changedIndexes.includes(1), 'band 1 was written only before the token');
  t.is(changed.bands.find((band) => band.index === 2)?.path, join(bundlePath, 'bands', '2'));
  const refused = await runSbm(['changed-bands', bundlePath, '--since', 'sbm1:00000000-0000-4000-8000-000000000000:00000001:1']);
  t.is(refused.exitCode, 10, String(refused.stderr));

  const writer2 = startWriter(info.uri);
  const second = await sbmJson<BackupJson>(t, ['backup', bundlePath, dest]);
  t.is((await writer2).exitCode, 0);
  t.is(second.mode, 'tracked', 'the tracker answered through the mount: no hash-compare fallback');
  t.true(second.bandsLinked > 0, 'band 1 is linked to the first backup');
  const created = await sbmJson<{ name: string; path: string }>(t, ['snapshot', 'create', bundlePath, 'daily']);
  t.is(created.path, join(bundlePath, '.sbm', 'snapshots', 'daily.sparsebundle'));
  t.like(await sbmJson<{ snapshots: Array<{ name: string }> }>(t, ['snapshot', 'list', bundlePath]), { snapshots: [{ name: 'daily' }] });
  t.like(await sbmJson<{ deleted: string }>(t, ['snapshot', 'delete', bundlePath, 'daily']), { deleted: 'daily' });
  const listed = await sbmJson<{ snapshots: Array<{ name: string }> }>(t, ['snapshot', 'list', bundlePath]);
  t.deepEqual(listed.snapshots, [], 'the backups released their snapshots');

  process.kill(info.pid, 'SIGTERM');
  const stopped = await child;
  t.is(stopped.exitCode, 0, String(stopped.stderr));
  await t.throwsAsync(stat(join(bundlePath, '.sbm', 'control.json')));
  await t.throwsAsync(stat(controlFile.socket));
  await t.throwsAsync(stat(dirname(controlFile.socket)));

  for (const backup of [first, second]) t.is((await runSbm(['verify', backup.path])).exitCode, 0, backup.path);
  const restored = join(dir, 'first.raw');
  const restore = await runSbm(['restore', first.path, restored, '--to', 'raw']);
  t.is(restore.exitCode, 0, String(restore.stderr));
  const bytes = await readFile(restored);
  t.is(bytes.length, DISK_BYTES);
  t.true(
    bytes.subarray(0, WRITER_OFFSET).equals(before.subarray(0, WRITER_OFFSET)),
    'bands 0-2 are exactly what was written before backup 1',
  );
  for (let offset = WRITER_OFFSET; offset < DISK_BYTES; offset += BLOCK_BYTES) {
    const block = bytes.subarray(offset, offset + BLOCK_BYTES);
    // The concurrent writer's blocks are whole: either not yet written or written, never torn.
    if (!(block.every((byte) => byte === 0) || block.every((byte) => byte === WRITER_PATTERN))) return t.fail(`torn block at ${offset}`);
  }
});

test('a stale control.json (dead mount) is ignored: free bundle opens, held bundle stays SBM_LOCKED', async (t) => {
  const dir = await tempDir(t);
  const bundlePath = join(dir, 'vm.sparsebundle');
  await (await SparseBundle.create(bundlePath, { sizeBytes: DISK_BYTES })).close();
  const dead = await execa('node', ['-e', 'process.stdout.write(String(process.pid))']);
  await writeFile(
    join(bundlePath, '.sbm', 'control.json'),
    JSON.stringify({ version: 1, pid: Number(dead.stdout), socket: join(dir, 'control.sock') }),
  );
  t.is((await runSbm(['token', bundlePath])).exitCode, 0);

  const holder = await SparseBundle.open(bundlePath);
  t.teardown(() => holder.close());
  for (const args of [
    ['token', bundlePath],
    ['backup', bundlePath, join(dir, 'backups')],
    ['snapshot', 'create', bundlePath, 's1'],
  ]) {
    const result = await runSbm(args);
    t.is(result.exitCode, 3, args.join(' '));
    t.regex(String(result.stderr), /SBM_LOCKED/);
  }
});

test('control.json is published before the NBD socket exists: a command never meets the mount as SBM_LOCKED', async (t) => {
  const dir = await tempDir(t);
  const bundlePath = join(dir, 'vm.sparsebundle');
  await (await SparseBundle.create(bundlePath, { sizeBytes: DISK_BYTES })).close();
  const socket = join(dir, 'nbd.sock');
  const controlFile = join(bundlePath, '.sbm', 'control.json');
  const child = execa('node', [SBM_BIN, 'mount', bundlePath, '--socket', socket], { reject: false, env: { NO_COLOR: '1' } });
  t.teardown(() => {
    if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
  });
  let printed = '';
  let controlWhenPrinted = false;
  child.stdout?.on('data', (chunk: Buffer) => {
    if (printed === '') controlWhenPrinted = existsSync(controlFile);
    printed += chunk.toString();
  });
  // Polled between event-loop turns, so the gap between the socket and control.json, if any, is seen.
  const deadline = Date.now() + 20_000;
  while (!existsSync(socket)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no socket: ${String((await child).stderr)}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.true(existsSync(controlFile), 'control.json exists the moment the NBD socket does');
  const token = await runSbm(['token', bundlePath]);
  t.is(token.exitCode, 0, String(token.stderr));
  while (!printed.includes('\n')) await new Promise((resolve) => setTimeout(resolve, 10));
  t.true(controlWhenPrinted, 'control.json exists when the URI is printed');
  t.is(printed.split('\n')[0], `nbd+unix:///vm?socket=${socket}`);
  child.kill('SIGTERM');
  t.is((await child).exitCode, 0);
  t.false(existsSync(controlFile));
});
