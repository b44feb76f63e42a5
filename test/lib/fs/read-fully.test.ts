// The descriptor-level loops the band store uses for I/O too large for the synchronous path.

import test from 'ava';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readFullyFd, writeFullyFd } from '../../../lib/fs/read-fully.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';

test('writeFullyFd writes at its offset and readFullyFd reads it back', async (t) => {
  const path = join(await tempDir(t), 'band');
  await writeFile(path, Buffer.alloc(0));
  const data = seededBytes(3 * 1024 * 1024 + 17, 7);
  const handle = await open(path, 'r+');
  t.teardown(() => handle.close());
  await writeFullyFd(handle.fd, data, 4096);
  const file = await readFile(path);
  t.is(file.length, 4096 + data.length);
  t.true(file.subarray(4096).equals(data));
  const back = Buffer.alloc(data.length);
  t.is(await readFullyFd(handle.fd, back, 4096), data.length);
  t.true(back.equals(data));
});

test('readFullyFd past the end of the file returns what it read and zero-fills the rest', async (t) => {
  const path = join(await tempDir(t), 'band');
  await writeFile(path, Buffer.from('abcdef'));
  const handle = await open(path, 'r');
  t.teardown(() => handle.close());
  const target = Buffer.alloc(10, 0xff);
  t.is(await readFullyFd(handle.fd, target, 2), 4);
  t.deepEqual([...target], [...Buffer.from('cdef'), 0, 0, 0, 0, 0, 0]);
  t.is(await readFullyFd(handle.fd, Buffer.alloc(0), 0), 0);
});

test('a failing descriptor rejects instead of hanging', async (t) => {
  const path = join(await tempDir(t), 'band');
  await writeFile(path, Buffer.from('abc'));
  const handle = await open(path, 'r');
  t.teardown(() => handle.close());
  await t.throwsAsync(writeFullyFd(handle.fd, Buffer.from('x'), 0), { code: 'EBADF' });
});

test('a write that makes no progress is SBM_IO carrying errno EIO: NBD answers EIO, never ENOSPC', async (t) => {
  const { writeFully } = await import('../../../lib/fs/read-fully.js');
  const { fromSystemError, isSbmError } = await import('../../../lib/errors.js');
  const { nbdErrorOf } = await import('../../../lib/nbd/nbd-request-runner.js');
  const { NBD_EIO } = await import('../../../lib/nbd/constants.js');
  let calls = 0;
  const stuck = { write: async () => ({ bytesWritten: calls++ === 0 ? 2 : 0 }) } as unknown as Parameters<typeof writeFully>[0];
  const error = await t.throwsAsync(writeFully(stuck, Buffer.from('abcdef'), 100));
  t.true(isSbmError(error, 'SBM_IO'));
  t.is(error?.message, 'SBM_IO: write of 4 bytes at 102 made no progress');
  t.like((error as { data?: unknown }).data, { errno: 'EIO', bytes: 4, position: 102 });
  t.true(fromSystemError(error, 'write band') === error, 'kept as it is by the usual wrapping');
  t.is(nbdErrorOf(error), NBD_EIO);
});
