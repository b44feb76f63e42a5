import test from 'ava';
import { LazyBandSet } from '../../../lib/bundle/lazy-band-set.js';

function counted(bands: number[]) {
  let calls = 0;
  const set = new LazyBandSet(() => {
    calls++;
    return bands;
  });
  return { set, calls: () => calls };
}

test('lists on the first use of any reader, once', (t) => {
  const uses: Array<[string, (set: Set<number>) => unknown, unknown]> = [
    ['has', (set) => set.has(6), true],
    ['size', (set) => set.size, 3],
    ['spread', (set) => [...set], [0, 6, 11]],
    ['values', (set) => [...set.values()], [0, 6, 11]],
    ['keys', (set) => [...set.keys()], [0, 6, 11]],
    ['entries', (set) => [...set.entries()].map(([key]) => key), [0, 6, 11]],
    [
      'forEach',
      (set) => {
        const seen: number[] = [];
        for (const value of set) seen.push(value);
        return seen;
      },
      [0, 6, 11],
    ],
    ['new Set', (set) => [...new Set(set)], [0, 6, 11]],
  ];
  for (const [name, use, expected] of uses) {
    const { set, calls } = counted([0, 6, 11]);
    t.false(set.listed, name);
    t.is(set.sizeIfListed(), undefined, name);
    t.is(calls(), 0, name);
    t.deepEqual(use(set), expected, name);
    t.deepEqual(use(set), expected, name);
    t.is(calls(), 1, name);
    t.true(set.listed, name);
    t.is(set.sizeIfListed(), 3, name);
  }
});

test('changes before the first read apply on top of the listing', (t) => {
  const added = counted([1, 2]);
  added.set.add(9);
  t.deepEqual(
    [...added.set].sort((a, b) => a - b),
    [1, 2, 9],
  );
  const deleted = counted([1, 2]);
  t.true(deleted.set.delete(2));
  t.false(deleted.set.delete(5));
  t.deepEqual([...deleted.set], [1]);
  const cleared = counted([1, 2]);
  cleared.set.clear();
  t.is(cleared.set.size, 0);
  t.is(cleared.calls(), 0, 'clearing needs no listing');
});

test('a failed listing is retried by the next use instead of reading as empty', (t) => {
  let fail = true;
  const set = new LazyBandSet(() => {
    if (fail) throw new Error('EIO');
    return [3];
  });
  t.throws(() => set.has(3), { message: 'EIO' });
  t.false(set.listed);
  fail = false;
  t.true(set.has(3));
  t.is(set.size, 1);
});
