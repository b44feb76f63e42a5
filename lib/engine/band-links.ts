// Hard links of band files, for snapshots and reverts: only regular files are linked, because
// link(2) on a symlink links the symlink itself, and a snapshot must hold the band's bytes.

import { linkSync } from 'node:fs';
import { join } from 'node:path';
import { bandFileName } from '../bundle/bundle-paths.js';
import { SbmError } from '../errors.js';
import { assertRegularSync, isNotRegularFile } from '../fs/safe-open.js';
import { inSyncRuns } from '../sync-runs.js';

/** Refuses a band path that is not a regular file (a symlink, a folder) with SBM_BAD_BAND. */
export function assertRegularBand(path: string, bandIndex: number): void {
  try {
    assertRegularSync(path);
  } catch (error) {
    if (!isNotRegularFile(error)) throw error;
    throw new SbmError(
      'SBM_BAD_BAND',
      `band ${bandFileName(bandIndex)} (${path}) is a ${error.kind}, not a regular file; no snapshot holds it (see sbm check)`,
      {
        path,
        bandIndex,
        kind: error.kind,
      },
    );
  }
}

/** Links each band's file as `folder/<hex n>`; refuses before linking a band that is not a regular file. */
export async function linkBandFiles(bands: readonly number[], pathOf: (bandIndex: number) => string, folder: string): Promise<void> {
  await inSyncRuns(bands, (bandIndex) => {
    assertRegularBand(pathOf(bandIndex), bandIndex);
    linkSync(pathOf(bandIndex), join(folder, bandFileName(bandIndex)));
  });
}
