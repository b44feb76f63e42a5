import test from 'ava';
import { SyncIoBackoff } from '../../../lib/engine/sync-io-backoff.js';

test('fast reads keep synchronous reads allowed', (t) => {
  const backoff = new SyncIoBackoff(1);
  for (let now = 0; now < 100; now += 1) {
    t.true(backoff.allowsSync(now));
    backoff.record(now, now + 0.05);
  }
});

test('a slow read backs off 5 ms, doubling per slow read up to 1 s; a fast read resets it', (t) => {
  const backoff = new SyncIoBackoff(1);
  let now = 0;
  const periods: number[] = [];
  for (let slow = 0; slow < 10; slow++) {
    backoff.record(now, now + 3); // missed the page cache
    const finished = now + 3;
    let until = finished;
    while (!backoff.allowsSync(until)) until += 1;
    periods.push(until - finished);
    now = until;
  }
  t.deepEqual(periods, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
  backoff.record(now, now + 0.1); // a page-cache hit
  backoff.record(now + 1, now + 4); // the next miss starts over
  t.false(backoff.allowsSync(now + 8));
  t.true(backoff.allowsSync(now + 9));
});

test('the threshold is per instance: a 1.5 ms write is fast under a 2 ms threshold, slow under 1 ms', (t) => {
  const writes = new SyncIoBackoff(2);
  const reads = new SyncIoBackoff(1);
  writes.record(0, 1.5);
  reads.record(0, 1.5);
  t.true(writes.allowsSync(1.5));
  t.false(reads.allowsSync(1.5));
  t.true(reads.allowsSync(6.5));
});
