import test from 'ava';
import { ReadBackoff } from '../../../lib/engine/read-backoff.js';

test('fast reads keep synchronous reads allowed', (t) => {
  const backoff = new ReadBackoff();
  for (let now = 0; now < 100; now += 1) {
    t.true(backoff.allowsSync(now));
    backoff.record(now, now + 0.05);
  }
});

test('a slow read backs off 5 ms, doubling per slow read up to 1 s; a fast read resets it', (t) => {
  const backoff = new ReadBackoff();
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
