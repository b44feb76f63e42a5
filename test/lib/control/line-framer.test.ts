import test from 'ava';
import { LineFramer } from '../../../lib/control/line-framer.js';

test('lines split across chunks and several lines in one chunk', (t) => {
  const framer = new LineFramer(100);
  t.deepEqual(framer.push(Buffer.from('{"a"')), { lines: [], overflow: false });
  t.deepEqual(framer.push(Buffer.from(':1}\n{"b":2}\n\n{"c"')), { lines: ['{"a":1}', '{"b":2}', ''], overflow: false });
  t.deepEqual(framer.push(Buffer.from(':3}\n')), { lines: ['{"c":3}'], overflow: false });
});

test('multi-byte characters split between chunks decode whole', (t) => {
  const framer = new LineFramer(100);
  const bytes = Buffer.from('"é€"\n');
  t.deepEqual(framer.push(bytes.subarray(0, 2)).lines, []);
  t.deepEqual(framer.push(bytes.subarray(2)).lines, ['"é€"']);
});

test('a line longer than the bound overflows, also when it arrives in pieces, and stays overflowed', (t) => {
  const framer = new LineFramer(10);
  t.false(framer.push(Buffer.from('0123456789')).overflow, 'exactly the bound is fine');
  t.true(framer.push(Buffer.from('a')).overflow);
  t.deepEqual(framer.push(Buffer.from('\n{}\n')), { lines: [], overflow: true });
  const second = new LineFramer(10);
  t.deepEqual(second.push(Buffer.from('ok\n0123456789X\n')), { lines: ['ok'], overflow: true });
});
