import test from 'ava';
import { StripeLock } from '../../../lib/engine/stripe-lock.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

test('holders of one stripe run one at a time, in arrival order', async (t) => {
  const lock = new StripeLock(4);
  const events: string[] = [];
  let inside = 0;
  const holder = (name: string, key: number) =>
    lock.run(key, async () => {
      inside++;
      t.is(inside, 1, `${name} ran alongside another holder`);
      events.push(`${name}+`);
      await tick();
      events.push(`${name}-`);
      inside--;
      return name;
    });
  // Keys 1, 5 and 9 share stripe 1.
  const results = await Promise.all([holder('a', 1), holder('b', 5), holder('c', 9)]);
  t.deepEqual(results, ['a', 'b', 'c']);
  t.deepEqual(events, ['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
});

test('different stripes do not wait for each other', async (t) => {
  const lock = new StripeLock(4);
  let releaseFirst!: () => void;
  const first = lock.run(0, () => new Promise<void>((resolve) => (releaseFirst = resolve)));
  const second = await lock.run(1, async () => 'ran');
  t.is(second, 'ran');
  releaseFirst();
  await first;
});

test('a failing holder passes the stripe on and its caller sees the error', async (t) => {
  const lock = new StripeLock(2);
  const failing = lock.run(0, async () => {
    await tick();
    throw new Error('boom');
  });
  const next = lock.run(2, async () => 'next ran');
  await t.throwsAsync(failing, { message: 'boom' });
  t.is(await next, 'next ran');
  t.is(await lock.run(0, async () => 'free again'), 'free again');
});
