// The one way to turn a bands/ folder into band indexes. A name is a band when it is canonical
// (lowercase hex without leading zeros, see bundle-paths.ts) and lies within the disk's band
// count; every other name is a stray, told to the caller's warning sink (SBM_STRAY_FILE,
// SBM_BAND_PAST_END) and never read, written, linked or backed up. Indexes come in folder order:
// callers that need them sorted sort (a 1 TiB disk has 131,072 of them, and most callers do not).

import { readdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import type { WarningSink } from '../warnings.js';
import { parseBandName } from './bundle-paths.js';

/** The band indexes among `names` (entries of a bands/ folder); strays go to `onWarning`. */
export function bandIndexesOf(names: Iterable<string>, bandCount: number, onWarning: WarningSink): number[] {
  const bands: number[] = [];
  for (const name of names) {
    const bandIndex = parseBandName(name);
    if (bandIndex === undefined) {
      onWarning({
        code: 'SBM_STRAY_FILE',
        message: `bands/${name} is not a canonical band name (lowercase hex, no leading zeros); ignored`,
        data: { name },
      });
    } else if (bandIndex >= bandCount) {
      onWarning({
        code: 'SBM_BAND_PAST_END',
        message: `bands/${name} lies past the end of the disk (${bandCount} bands); ignored`,
        data: { name },
      });
    } else {
      bands.push(bandIndex);
    }
  }
  return bands;
}

/** Lists `bandsDir` (bandIndexesOf its names); undefined when the folder does not exist. */
export async function listBandFolder(bandsDir: string, bandCount: number, onWarning: WarningSink): Promise<number[] | undefined> {
  let names: string[];
  try {
    names = await readdir(bandsDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return bandIndexesOf(names, bandCount, onWarning);
}

/** listBandFolder, synchronously: for a listing made at first use inside a synchronous call. */
export function listBandFolderSync(bandsDir: string, bandCount: number, onWarning: WarningSink): number[] | undefined {
  let names: string[];
  try {
    names = readdirSync(bandsDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return bandIndexesOf(names, bandCount, onWarning);
}

/** A sink for listings whose strays were already reported (the engine warns when it lists bands/). */
export const STRAYS_REPORTED_ELSEWHERE: WarningSink = () => undefined;

/** The number of bands a disk of `sizeBytes` has. */
export function bandCountOf(sizeBytes: number, bandSizeBytes: number): number {
  return Math.ceil(sizeBytes / bandSizeBytes);
}
