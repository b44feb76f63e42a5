// A full filesystem is its own failure (SBM_NO_SPACE), not a generic I/O error: the user's fix is
// to free space, and the partial output has been removed by the time this is reported.

import { SbmError, fromSystemError, isSbmError } from '../errors.js';

/** ENOSPC or EDQUOT, raw from Node or already wrapped in an SbmError's data. */
export function isNoSpace(error: unknown): boolean {
  const errno = isSbmError(error) ? error.data.errno : (error as NodeJS.ErrnoException | undefined)?.code;
  return errno === 'ENOSPC' || errno === 'EDQUOT';
}

/** SBM_NO_SPACE for a full filesystem, otherwise what fromSystemError makes of `error`. */
export function noSpaceOrSystemError(error: unknown, doing: string, path: string): SbmError {
  if (isNoSpace(error)) {
    const errno = isSbmError(error) ? error.data.errno : (error as NodeJS.ErrnoException).code;
    return new SbmError(
      'SBM_NO_SPACE',
      `${doing} ${path}: no space left on its filesystem; the partial output was removed`,
      { path, errno },
      { cause: error },
    );
  }
  return fromSystemError(error, doing, path);
}
