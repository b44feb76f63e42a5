import test from 'ava';
import { ByteQueue } from '../../lib/byte-queue.js';

const bytes = (...values: number[]) => Buffer.from(values);

test('an owning queue gives each chunk back once, when its last byte is taken, and copies what take() returns', (t) => {
  const released: Buffer[] = [];
  const queue = new ByteQueue((chunk) => released.push(chunk));
  const first = bytes(1, 2, 3);
  const second = bytes(4, 5, 6, 7);
  queue.push(first);
  queue.push(second);
  queue.push(Buffer.alloc(0));
  t.is(released.length, 1, 'an empty chunk goes back at once');
  const taken = queue.take(2);
  t.deepEqual([...taken], [1, 2]);
  t.is(taken.buffer === first.buffer && taken.byteOffset === first.byteOffset, false, 'take() copies: no view of a pooled chunk');
  first.fill(0);
  t.deepEqual([...taken], [1, 2], 'the copy outlives the chunk being reused');
  t.is(released.length, 1, 'the first chunk still holds a byte');
  const into = Buffer.alloc(3);
  queue.takeInto(into);
  t.deepEqual([...into], [0, 4, 5]);
  t.deepEqual(released.slice(1), [first], 'the first chunk went back when its last byte was taken');
  queue.clear();
  t.deepEqual(released.slice(1), [first, second], 'clear() gives back the rest');
  t.is(queue.length, 0);
});

test('a queue without a release function still returns views (no copy)', (t) => {
  const queue = new ByteQueue();
  const chunk = bytes(9, 8, 7);
  queue.push(chunk);
  const view = queue.take(2);
  chunk[0] = 1;
  t.is(view[0], 1, 'a view of the chunk');
  t.is(queue.skip(5), 1);
});
