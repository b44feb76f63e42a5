// A positional read of metadata that must be entirely inside the file: a short read is damage
// (the file was truncated), named with the structure being read.

import type { FileHandle } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';

export async function readExactly(handle: FileHandle, target: Uint8Array, position: number, path: string, what: string): Promise<void> {
  let got: number;
  try {
    got = await readFully(handle, target, position);
  } catch (error) {
    throw fromSystemError(error, `cannot read ${what}`, path);
  }
  if (got < target.length) {
    throw new SbmError('SBM_CORRUPT', `${path}: ${what} at ${position} runs past the end of the file (truncated?)`, { path, position });
  }
}
