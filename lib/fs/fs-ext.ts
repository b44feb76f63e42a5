// fs-ext (flock, lseek with SEEK_DATA/SEEK_HOLE) is a native CommonJS addon. It is loaded with
// require() on first use rather than imported: an ES import of a CommonJS module makes Node scan
// its source for exports first, on every CLI start, while most commands lock only once.

import { createRequire } from 'node:module';
import { SbmError } from '../errors.js';

type FsExt = typeof import('fs-ext');

let loaded: FsExt | undefined;

export function fsExt(): FsExt {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('fs-ext') as FsExt;
    } catch (error) {
      // Loaded lazily, a broken install would otherwise surface as an odd lock or seek failure.
      throw new SbmError(
        'SBM_INTERNAL',
        `cannot load the fs-ext native addon (${(error as Error).message}); reinstall with npm ci`,
        {},
        { cause: error },
      );
    }
  }
  return loaded;
}
