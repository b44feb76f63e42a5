// fs-ext (flock, lseek with SEEK_DATA/SEEK_HOLE) is a native CommonJS addon. It is loaded with
// require() on first use rather than imported: an ES import of a CommonJS module makes Node scan
// its source for exports first (~4 ms of every CLI start), and most commands lock only once.

import { createRequire } from 'node:module';

type FsExt = typeof import('fs-ext');

let loaded: FsExt | undefined;

export function fsExt(): FsExt {
  loaded ??= createRequire(import.meta.url)('fs-ext') as FsExt;
  return loaded;
}
