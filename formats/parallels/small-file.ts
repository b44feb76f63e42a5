// Reads a small metadata file whole (descriptors and configs are a few KB): a file over the cap is
// refused before it is read, so a hostile multi-GB "descriptor" costs nothing.

import { open } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';

/** Reads a file of at most `maxBytes` (descriptors and configs are small; a huge one is refused unread). */
export async function readSmallFile(path: string, maxBytes: number, what: string): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, `cannot read ${what}`, path);
  }
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) {
      throw new SbmError('SBM_UNSUPPORTED', `${path}: ${what} is ${size} bytes, more than the ${maxBytes} sbm reads`, { path });
    }
    return await handle.readFile();
  } catch (error) {
    throw fromSystemError(error, `cannot read ${what}`, path);
  } finally {
    await handle.close();
  }
}
