import test from 'ava';
import { inSyncRuns } from '../../lib/sync-runs.js';

test('inSyncRuns calls every item in order and lets the event loop run between runs', async (t) => {
  const seen: number[] = [];
  // Another task queued on the event loop must get in between runs of 4, never inside one.
  let interleaved = 0;
  const watcher = () => {
    if (seen.length < 10) {
      interleaved++;
      t.is(seen.length % 4, 0, 'ran in the middle of a run');
      setImmediate(watcher);
    }
  };
  setImmediate(watcher);
  await inSyncRuns([...Array(10).keys()], (item) => seen.push(item), 4);
  t.deepEqual(seen, [...Array(10).keys()]);
  t.true(interleaved >= 2, `the event loop ran ${interleaved} times during the runs`);
});

test('inSyncRuns stops at the first throw', async (t) => {
  const seen: number[] = [];
  await t.throwsAsync(
    inSyncRuns(
      [1, 2, 3, 4, 5, 6],
      (item) => {
        if (item === 5) throw new Error('boom');
        seen.push(item);
      },
      2,
    ),
    { message: 'boom' },
  );
  t.deepEqual(seen, [1, 2, 3, 4]);
});
