// Resolves a qcow2 backing file name against the image's own folder (as qemu does for relative
// names) and refuses a name that escapes it (`../`, an absolute path elsewhere, a symlink out)
// unless the caller opted in with allowOutside.

import { realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { SbmError, fromSystemError } from '../../lib/errors.js';

function isInside(folder: string, candidate: string): boolean {
  const rel = relative(folder, candidate);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** qemu names backing files by protocol too (`nbd://`, `json:{...}`): those are not files. */
function isProtocolName(name: string): boolean {
  return /^[a-z][a-z0-9+.-]*:/i.test(name) && !/^[A-Za-z]:[\\/]/.test(name);
}

export async function resolveBackingFile(imagePath: string, name: string, allowOutside: boolean): Promise<string> {
  if (name.includes('\0')) throw new SbmError('SBM_CORRUPT', `${imagePath}: backing file name holds a NUL byte`, { path: imagePath });
  if (isProtocolName(name)) {
    throw new SbmError(
      'SBM_UNSUPPORTED',
      `${imagePath}: backing file "${name.slice(0, 80)}" is not a file (qemu protocol names are not read)`,
      { path: imagePath },
    );
  }
  const folder = await realpath(dirname(imagePath));
  const outside = (): SbmError =>
    new SbmError(
      'SBM_PATH_OUTSIDE',
      `${imagePath}: backing file "${name}" lies outside the image's folder (use --allow-outside to permit)`,
      { path: imagePath, name },
    );
  const joined = resolve(folder, name);
  if (!allowOutside && !isInside(folder, joined)) throw outside();
  let real: string;
  try {
    real = await realpath(joined);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new SbmError('SBM_NOT_FOUND', `${imagePath}: backing file "${name}" not found`, { path: imagePath, name });
    }
    throw fromSystemError(error, 'cannot open qcow2 backing file', joined);
  }
  if (!allowOutside && !isInside(folder, real)) throw outside();
  const info = await stat(real);
  if (!info.isFile())
    throw new SbmError('SBM_UNSUPPORTED', `${imagePath}: backing file "${name}" is not a regular file`, { path: imagePath, name });
  return real;
}
