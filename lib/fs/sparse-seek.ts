// Finds the allocated runs of a file with lseek(SEEK_DATA/SEEK_HOLE) through fs-ext, so copies
// skip holes without reading them. Filesystems without support report the whole file as data,
// which is a safe answer (callers still skip zero blocks by content).

import { fsExt } from './fs-ext.js';

const SEEK_DATA = 3;
const SEEK_HOLE = 4;

export interface ByteRun {
  readonly offset: number;
  readonly length: number;
}

/** Allocated runs of the open file `fd` inside [start, end), in order. */
export function allocatedRuns(fd: number, start: number, end: number): ByteRun[] {
  const runs: ByteRun[] = [];
  let position = start;
  while (position < end) {
    let dataStart: number;
    try {
      dataStart = fsExt().seekSync(fd, position, SEEK_DATA);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENXIO') break; // no data at or after `position`
      if (code === 'EINVAL' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') return [{ offset: start, length: end - start }];
      throw error;
    }
    if (dataStart >= end) break;
    const holeStart = Math.min(end, fsExt().seekSync(fd, dataStart, SEEK_HOLE));
    runs.push({ offset: dataStart, length: holeStart - dataStart });
    position = holeStart;
  }
  return runs;
}
