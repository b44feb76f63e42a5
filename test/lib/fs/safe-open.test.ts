// openRegular / readSmallFile: symlinks are never followed (not even to create), FIFOs and devices
// never block, and a huge file is judged by its size without being read.

import test from 'ava';
import { execa } from 'execa';
import { constants } from 'node:fs';
import { access, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFileDurably, fsyncDirectory } from '../../../lib/fs/atomic-write.js';
import { isNotRegularFile, openRegular, readSmallFile } from '../../../lib/fs/safe-open.js';
import { tempDir } from '../../helpers/tools.js';

test('O_CREAT through a dangling symlink fails and creates nothing', async (t) => {
  const dir = await tempDir(t);
  const link = join(dir, 'link');
  await symlink(join(dir, 'target'), link);
  const error = await t.throwsAsync(openRegular(link, constants.O_RDWR | constants.O_CREAT));
  t.true(isNotRegularFile(error));
  t.like(error, { kind: 'symlink' });
  await t.throwsAsync(access(join(dir, 'target')), { code: 'ENOENT' });
});

test('a FIFO (read or write) and a symlink to /dev/zero are refused at once', async (t) => {
  t.timeout(10_000);
  const dir = await tempDir(t);
  const fifo = join(dir, 'fifo');
  await execa('mkfifo', [fifo]);
  t.like(await t.throwsAsync(openRegular(fifo, constants.O_RDONLY)), { kind: 'FIFO' });
  t.like(await t.throwsAsync(openRegular(fifo, constants.O_WRONLY)), { kind: 'FIFO' });
  t.like(await t.throwsAsync(openRegular(fifo, constants.O_RDWR)), { kind: 'FIFO' });
  await symlink('/dev/zero', join(dir, 'zero'));
  t.like(await t.throwsAsync(readSmallFile(join(dir, 'zero'), 1024)), { kind: 'symlink' });
  t.like(await t.throwsAsync(openRegular('/dev/zero', constants.O_RDONLY)), { kind: 'character device' });
});

test('readSmallFile reads a small file whole and reports a huge sparse one too long without reading it', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'small'), 'hello');
  t.like(await readSmallFile(join(dir, 'small'), 5), { sizeBytes: 5, tooLong: false });
  t.is((await readSmallFile(join(dir, 'small'), 5)).bytes.toString(), 'hello');
  t.like(await readSmallFile(join(dir, 'small'), 4), { sizeBytes: 5, tooLong: true });
  await execa('truncate', ['-s', '8G', join(dir, 'huge')]);
  const huge = await readSmallFile(join(dir, 'huge'), 1024);
  t.like(huge, { sizeBytes: 8 * 2 ** 30, tooLong: true });
  t.is(huge.bytes.length, 0, 'nothing of a file over the limit is read');
});

test('copyFileDurably copies only a regular file: a symlink or FIFO source is refused without blocking', async (t) => {
  t.timeout(10_000);
  const dir = await tempDir(t);
  await writeFile(join(dir, 'secret'), 'outside');
  await symlink(join(dir, 'secret'), join(dir, 'link'));
  await execa('mkfifo', [join(dir, 'fifo')]);
  t.like(await t.throwsAsync(copyFileDurably(join(dir, 'link'), join(dir, 'copy-1'))), { kind: 'symlink' });
  t.like(await t.throwsAsync(copyFileDurably(join(dir, 'fifo'), join(dir, 'copy-2'))), { kind: 'FIFO' });
  await t.throwsAsync(access(join(dir, 'copy-1')), { code: 'ENOENT' });
  await copyFileDurably(join(dir, 'secret'), join(dir, 'copy-3'));
  t.pass();
});

test('fsyncDirectory fails at once on a FIFO where a folder belongs', async (t) => {
  t.timeout(10_000);
  const dir = await tempDir(t);
  await execa('mkfifo', [join(dir, 'fifo')]);
  await t.throwsAsync(fsyncDirectory(join(dir, 'fifo')), { code: 'ENOTDIR' });
  await fsyncDirectory(dir);
  t.pass();
});
