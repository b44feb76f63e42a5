// The file side of an exporter: creates the output (never over an existing file), hands the
// handle to the format's writer, makes the result durable, and removes what it created when the
// writer fails, so no half-written image is left behind.

import { type FileHandle, open, unlink } from 'node:fs/promises';
import { SbmError } from '../lib/errors.js';
import { noSpaceOrSystemError } from '../lib/fs/no-space.js';

/** What a writer reports: the data bytes it wrote (metadata not counted). */
export type ImageWriter = (handle: FileHandle) => Promise<number>;

export async function writeNewImageFile(outPath: string, what: string, writer: ImageWriter): Promise<number> {
  let handle: FileHandle;
  try {
    handle = await open(outPath, 'wx', 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST')
      throw new SbmError('SBM_EXISTS', `${outPath} already exists`, { path: outPath });
    throw noSpaceOrSystemError(error, `cannot create ${what}`, outPath);
  }
  try {
    const bytesWritten = await writer(handle);
    await handle.sync();
    await handle.close();
    return bytesWritten;
  } catch (error) {
    await handle.close().catch(() => undefined); // the write error matters more than a close error
    await unlink(outPath).catch(() => undefined); // we created it: leave nothing half-written behind
    throw error instanceof SbmError ? error : noSpaceOrSystemError(error, `cannot write ${what}`, outPath);
  }
}
