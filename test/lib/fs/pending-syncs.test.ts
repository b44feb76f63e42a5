import test from 'ava';
import type { FileHandle } from 'node:fs/promises';
import { PendingSyncs } from '../../../lib/fs/pending-syncs.js';

/** A stand-in FileHandle whose fsync finishes when the test says, recording what happened to it. */
function fakeHandle(events: string[], name: string, syncError?: Error) {
  let finishSync: () => void = () => {};
  const handle = {
    sync: () =>
      new Promise<void>((resolve, reject) => {
        events.push(`sync ${name}`);
        finishSync = () => (syncError === undefined ? resolve() : reject(syncError));
      }),
    close: async () => {
      events.push(`close ${name}`);
    },
  };
  return { handle: handle as unknown as FileHandle, finish: () => finishSync() };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('settleAfter returns only once every fsync has finished, and every file is closed after its fsync', async (t) => {
  const events: string[] = [];
  const syncs = new PendingSyncs();
  const a = fakeHandle(events, 'a');
  const b = fakeHandle(events, 'b');
  await syncs.add(a.handle);
  await syncs.add(b.handle);
  let settled = false;
  const settling = syncs.settleAfter(Promise.resolve('work done')).then((value) => {
    settled = true;
    return value;
  });
  await tick();
  t.false(settled, 'waits for the pending fsyncs');
  a.finish();
  await tick();
  t.false(settled, 'one fsync is still pending');
  b.finish();
  t.is(await settling, 'work done');
  t.deepEqual(events, ['sync a', 'sync b', 'close a', 'close b']);
});

test('a failed fsync fails settleAfter, and the file is still closed', async (t) => {
  const events: string[] = [];
  const syncs = new PendingSyncs();
  const bad = fakeHandle(events, 'bad', Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
  await syncs.add(bad.handle);
  bad.finish();
  await t.throwsAsync(syncs.settleAfter(Promise.resolve()), { message: /EIO/ });
  t.deepEqual(events, ['sync bad', 'close bad']);
});

test("the work's own error wins over an fsync failure, after every file is closed", async (t) => {
  const events: string[] = [];
  const syncs = new PendingSyncs();
  const bad = fakeHandle(events, 'bad', new Error('fsync failed'));
  await syncs.add(bad.handle);
  const settling = syncs.settleAfter(Promise.reject(new Error('copy failed')));
  await tick();
  t.deepEqual(events, ['sync bad'], 'not closed before its fsync returned');
  bad.finish();
  await t.throwsAsync(settling, { message: 'copy failed' });
  t.deepEqual(events, ['sync bad', 'close bad']);
});

test('add waits while 32 files are pending, so open descriptors stay bounded', async (t) => {
  const events: string[] = [];
  const syncs = new PendingSyncs();
  const handles = Array.from({ length: 33 }, (_, index) => fakeHandle(events, String(index)));
  for (const { handle } of handles.slice(0, 32)) await syncs.add(handle);
  let added = false;
  const adding = syncs.add((handles[32] as (typeof handles)[number]).handle).then(() => {
    added = true;
  });
  await tick();
  t.false(added, 'the 33rd waits');
  t.false(events.includes('sync 32'));
  handles[0]?.finish();
  await adding;
  t.true(events.includes('sync 32'));
  for (const handle of handles.slice(1)) handle.finish();
  await syncs.settleAfter(Promise.resolve());
  t.is(events.filter((event) => event.startsWith('close')).length, 33);
});
