import test from 'ava';
import { BufferPool, FRAME_HEADROOM_BYTES } from '../../../lib/nbd/buffer-pool.js';

test('buffers are reused after release, never handed out twice, and foreign releases are ignored', (t) => {
  const pool = new BufferPool();
  const first = pool.acquire(256 * 1024 + 28);
  t.is(first.length, 256 * 1024 + 28);
  pool.release(first);
  pool.release(first); // double release: no-op
  t.is(pool.idleBuffers, 1);
  const again = pool.acquire(200_000);
  t.is(again.buffer, first.buffer, 'the released memory is reused');
  const other = pool.acquire(200_000);
  t.not(other.buffer, again.buffer, 'a buffer in use is not handed out again');
  pool.release(Buffer.alloc(4096));
  t.is(pool.idleBuffers, 0);
  const huge = pool.acquire(40 * 1024 * 1024);
  t.is(huge.length, 40 * 1024 * 1024);
  pool.release(huge);
  t.is(pool.idleBuffers, 0, 'sizes beyond the classes are not pooled');
});

test('a 256 KiB READ reply frame (header + data) takes a 256 KiB class, not the next one up', (t) => {
  const pool = new BufferPool();
  const frame = pool.acquire(256 * 1024 + 28);
  t.is(frame.buffer.byteLength, 256 * 1024 + FRAME_HEADROOM_BYTES);
  const payload = pool.acquire(4096);
  t.is(payload.buffer.byteLength, 4096 + FRAME_HEADROOM_BYTES);
});

test('idle memory is capped', (t) => {
  const pool = new BufferPool(4 * (256 * 1024 + FRAME_HEADROOM_BYTES));
  const buffers = Array.from({ length: 8 }, () => pool.acquire(256 * 1024));
  for (const buffer of buffers) pool.release(buffer);
  t.is(pool.idleBuffers, 4);
});
