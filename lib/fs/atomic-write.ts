// Crash-safe file replacement: write a temp file in a staging folder on the same filesystem,
// fsync it, rename it over the target, then fsync the target's directory.

import { constants, copyFile, lstat, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomTag } from './temp-name.js';
import { writeFully } from './read-fully.js';
import { NotRegularFileError, fileKind } from './safe-open.js';

export async function fsyncDirectory(path: string): Promise<void> {
  // O_DIRECTORY: a FIFO left where a folder belongs fails at once instead of blocking the open.
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `target` with `data` atomically, staging in `stagingDir`. Does not fsync the directory. */
export async function replaceFile(target: string, data: Uint8Array, stagingDir: string): Promise<void> {
  const temp = join(stagingDir, `${basename(target)}.${randomTag()}.tmp`);
  const handle = await open(temp, 'wx', 0o644);
  try {
    await writeFully(handle, data, 0);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await unlink(temp).catch(() => undefined); // the original error matters more than a leftover temp
    throw error;
  }
  await handle.close();
  await rename(temp, target);
}

/** Replaces several files of one directory in the given order, then fsyncs that directory once. */
export async function replaceFilesInOrder(files: ReadonlyArray<{ path: string; data: Uint8Array }>, stagingDir: string): Promise<void> {
  for (const file of files) await replaceFile(file.path, file.data, stagingDir);
  const directories = new Set(files.map((file) => dirname(file.path)));
  for (const directory of directories) await fsyncDirectory(directory);
}

/**
 * Copies `from` to the new file `to` (which must not exist; reflinked where the filesystem can),
 * fsynced: a copy counts only once durable.
 */
export async function copyFileDurably(from: string, to: string): Promise<void> {
  // copyFile follows symlinks and blocks on FIFOs: copy only what is a regular file itself.
  const source = await lstat(from);
  if (!source.isFile()) throw new NotRegularFileError(from, fileKind(source));
  await copyFile(from, to, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
  const handle = await open(to, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates `path` (which must not exist) with `data`, fsynced. For files inside a folder that is renamed into place later. */
export async function writeNewFileDurably(path: string, data: Uint8Array): Promise<void> {
  const handle = await open(path, 'wx', 0o644);
  try {
    await writeFully(handle, data, 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
