// The control server end to end in one process: a real SparseBundle, a real Unix socket, raw
// lines from a hostile client and the ControlClient a CLI command uses.

import test, { type ExecutionContext } from 'ava';
import { createConnection } from 'node:net';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { connectControl } from '../../../lib/control/connect-control.js';
import { controlFilePath, readControlFile } from '../../../lib/control/control-file.js';
import { openBundleOperations } from '../../../lib/control/open-bundle-operations.js';
import { type ControlServerHandle, serveControl } from '../../../lib/control/serve-control.js';
import { MAX_REQUEST_BYTES } from '../../../lib/control/constants.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../../lib/errors.js';
import { type SbmWarning, WarningList, strictWarningError } from '../../../lib/warnings.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';

const MIB = 1024 * 1024;

interface Served {
  bundle: SparseBundle;
  control: ControlServerHandle;
  path: string;
}

async function served(t: ExecutionContext): Promise<Served> {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 32 * MIB });
  await bundle.write(0, seededBytes(4096, 1));
  const control = await serveControl(bundle);
  t.teardown(async () => {
    await control.close();
    await bundle.close();
  });
  return { bundle, control, path };
}

/** Sends raw bytes, collects reply lines until the server closes or `count` lines arrived. */
function rawExchange(socketPath: string, payload: string | Buffer, count: number): Promise<{ lines: unknown[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: socketPath });
    let text = '';
    const finish = (closed: boolean): void => {
      socket.destroy();
      resolve({
        lines: text
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => JSON.parse(line) as unknown),
        closed,
      });
    };
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.split('\n').length - 1 >= count) finish(false);
    });
    socket.on('close', () => finish(true));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error),
    );
    socket.write(payload);
  });
}

test('control.json names this process and a 0700 socket directory; close removes both', async (t) => {
  const { control, path } = await served(t);
  t.deepEqual(await readControlFile(path), { version: 1, pid: process.pid, socket: control.socketPath });
  t.is((await stat(dirname(control.socketPath))).mode & 0o777, 0o700);
  t.true((await stat(control.socketPath)).isSocket());
  await control.close();
  await t.throwsAsync(stat(controlFilePath(path)));
  await t.throwsAsync(stat(dirname(control.socketPath)));
  t.is(await connectControl(path), undefined);
});

test('malformed, unknown and oversized requests get error replies; the server keeps serving', async (t) => {
  const { control, path } = await served(t);
  const bad = await rawExchange(control.socketPath, 'garbage\n{"id":4,"op":"format"}\n{"id":5,"op":"snapshotList"}\n', 3);
  t.like(bad.lines[0], { id: null, error: { code: 'SBM_CONTROL' } });
  t.like(bad.lines[1], { id: 4, error: { code: 'SBM_CONTROL', message: 'request 4: unknown op "format"' } });
  t.like(bad.lines[2], { id: 5, result: { snapshots: [] } });

  const huge = await rawExchange(control.socketPath, Buffer.alloc(MAX_REQUEST_BYTES + 10, 0x20), 5);
  t.true(huge.closed, 'the connection is closed after an oversized request');
  t.like(huge.lines[0], { id: null, error: { code: 'SBM_CONTROL' } });
  t.regex((huge.lines[0] as { error: { message: string } }).error.message, new RegExp(`exceeds ${MAX_REQUEST_BYTES} bytes`));

  const client = await connectControl(path);
  if (client === undefined) return t.fail('no live mount found');
  t.teardown(() => client.close());
  t.regex(await client.token(), /^sbm1:/);
});

test("errors come back as SbmErrors with the code and exit status; paths are the client's", async (t) => {
  const { path } = await served(t);
  const client = await connectControl(path);
  if (client === undefined) return t.fail('no live mount found');
  t.teardown(() => client.close());
  const missing = await client.snapshotDelete('nope').catch((error: unknown) => error);
  t.true(isSbmError(missing, 'SBM_NOT_FOUND'));
  const foreign = await client.changedBandsSince('sbm1:00000000-0000-4000-8000-000000000000:00000001:1').catch((error: unknown) => error);
  t.true(isSbmError(foreign), String(foreign));
  t.is((foreign as { exitCode: number }).exitCode, 10);
  const refused = await client.backupSource().answerChangedBands('sbm1:00000000-0000-4000-8000-000000000000:00000001:1');
  t.is(refused.kind, 'refused', 'the backup source maps the refusal like the local one');

  const info = await client.snapshotCreate('s1');
  t.is(info.path, join(path, '.sbm', 'snapshots', 's1.sparsebundle'));
  const changed = await client.changedBandsSince('s1', 'full');
  t.is(changed.sinceKind, 'snapshot');
  t.is(changed.bandSizeBytes, 8 * MIB);
  t.deepEqual(changed.report.bands, []);
  t.deepEqual(
    (await client.snapshotList()).map((item) => item.name),
    ['s1'],
  );
});

test("a backup snapshot is held by its connection: others cannot delete it, a vanished client's is deleted", async (t) => {
  const { path, bundle } = await served(t);
  const first = await connectControl(path);
  const second = await connectControl(path);
  if (first === undefined || second === undefined) return t.fail('no live mount found');
  t.teardown(() => second.close());
  const frozen = await first.backupSource().freeze();
  const name = frozen.bundlePath.slice(frozen.bundlePath.lastIndexOf('/') + 1).replace('.sparsebundle', '');
  t.regex(name, /^sbm-backup-/);
  const refused = await second.snapshotDelete(name).catch((error: unknown) => error);
  t.true(isSbmError(refused, 'SBM_LOCKED'));
  // A second backup's stale cleanup skips the held snapshot instead of failing.
  const other = await second.backupSource().freeze();
  t.is((await new BundleSession(bundle).snapshots.list()).length, 2);
  await other.release();
  await first.close(); // like a killed `sbm backup`
  for (let tries = 0; tries < 100 && (await new BundleSession(bundle).snapshots.list()).length > 0; tries++)
    await new Promise((resolve) => setTimeout(resolve, 20));
  t.deepEqual(await new BundleSession(bundle).snapshots.list(), []);
});

test('a stale control.json (dead pid, or a socket that is gone) is ignored', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  await (await SparseBundle.create(path, { sizeBytes: 32 * MIB })).close();
  await writeFile(controlFilePath(path), JSON.stringify({ version: 1, pid: 2 ** 22 + 12345, socket: join(dir, 'gone.sock') }));
  t.is(await connectControl(path), undefined);
  await writeFile(controlFilePath(path), JSON.stringify({ version: 1, pid: process.pid, socket: join(dir, 'gone.sock') }));
  t.is(await connectControl(path), undefined);
  // Nothing holds the lock: the normal open succeeds.
  const operations = await openBundleOperations(path);
  t.false(operations.remote);
  await operations.close();
  // Someone else holds the lock and no mount answers: SBM_LOCKED stays SBM_LOCKED.
  const holder = await SparseBundle.open(path);
  t.teardown(() => holder.close());
  const locked = await openBundleOperations(path).catch((error: unknown) => error);
  t.true(isSbmError(locked, 'SBM_LOCKED'));
  t.true((await readdir(join(path, '.sbm'))).includes('control.json'), 'a stale file is left alone, not trusted');
});

test("revert through the client changes the live disk; closing the server keeps a backup's snapshot", async (t) => {
  const { path, bundle, control } = await served(t);
  const client = await connectControl(path);
  if (client === undefined) return t.fail('no live mount found');
  t.teardown(() => client.close());
  await client.snapshotCreate('before');
  await bundle.write(0, seededBytes(4096, 2));
  t.deepEqual(await client.snapshotRevert('before'), { bandsChanged: 1 });
  t.true((await bundle.read(0, 4096)).equals(seededBytes(4096, 1)));
  await client.snapshotDelete('before');

  const frozen = await client.backupSource().freeze();
  await control.close();
  await t.notThrowsAsync(stat(frozen.bundlePath), 'a backup still copying from it can finish');
  await t.notThrowsAsync(frozen.release(), 'releasing after the mount stopped leaves the snapshot to the next backup');
  t.is((await new BundleSession(bundle).snapshots.list()).length, 1);
});

test("warnings a request raises in the mount (an edit behind sbm's back) go to the caller", async (t) => {
  const { path } = await served(t);
  const warnings: SbmWarning[] = [];
  const operations = await openBundleOperations(path, { onWarning: (warning) => void warnings.push(warning) });
  t.teardown(() => operations.close());
  t.true(operations.remote, 'the served bundle is reached through its mount');
  const token = await operations.token();
  await writeFile(join(path, 'bands', '0'), seededBytes(8192, 9)); // not through sbm
  const changed = await operations.changedBandsSince(token, 'full');
  t.deepEqual(
    changed.report.bands.map((band) => [band.bandIndex, band.foreign]),
    [[0, true]],
  );
  t.deepEqual(
    warnings.map((warning) => warning.code),
    ['SBM_FOREIGN_CHANGE'],
  );
  t.regex(warnings[0]?.message ?? '', /bands\/0/);
});

test('with --strict the mount fails the request at the warning, before it records anything, as a local run does', async (t) => {
  const { path } = await served(t);
  const strictSink = (warning: SbmWarning): void => {
    throw strictWarningError(warning);
  };
  const operations = await openBundleOperations(path, { onWarning: strictSink, strictWarnings: true });
  t.teardown(() => operations.close());
  const token = await operations.token();
  await writeFile(join(path, 'bands', '0'), seededBytes(8192, 9));
  for (let attempt = 0; attempt < 2; attempt++) {
    const failed = await operations.changedBandsSince(token, 'full').catch((error: unknown) => error);
    t.true(isSbmError(failed, 'SBM_STRICT'), String(failed));
    t.regex((failed as Error).message, /SBM_FOREIGN_CHANGE/, 'and again: nothing was recorded or closed');
  }
});

test("a client that does not ask for warnings (an older sbm) leaves them to the mount's own output", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const mountWarnings = new WarningList();
  const bundle = await SparseBundle.create(path, { sizeBytes: 32 * MIB, onWarning: mountWarnings.sink });
  await bundle.write(0, seededBytes(4096, 1));
  const control = await serveControl(bundle);
  t.teardown(async () => {
    await control.close();
    await bundle.close();
  });
  const token = await new BundleSession(bundle).token();
  await writeFile(join(path, 'bands', '0'), seededBytes(8192, 9));
  const { lines } = await rawExchange(
    control.socketPath,
    `${JSON.stringify({ id: 1, op: 'changedSince', args: { since: token, audit: 'full' } })}\n`,
    1,
  );
  const reply = lines[0] as { result: { warnings?: unknown; report: { bands: unknown[] } } };
  t.is(reply.result.warnings, undefined);
  t.is(reply.result.report.bands.length, 1);
  t.deepEqual(
    mountWarnings.items.map((warning) => warning.code),
    ['SBM_FOREIGN_CHANGE'],
  );
});
