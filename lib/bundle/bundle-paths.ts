// Layout of a bundle folder and the band file naming rule.
//
//   vm.sparsebundle/
//     Info.plist  Info.bckup  token  lock
//     bands/<n in lowercase hex, no leading zeros>   nothing else ever goes here
//     mapped/<n>  only if macOS created it
//     .sbm/       sbm's own state; tmp/ stages atomic replaces on the same filesystem

import { join } from 'node:path';

export interface BundlePaths {
  readonly root: string;
  readonly infoPlist: string;
  readonly infoBackup: string;
  readonly token: string;
  readonly lock: string;
  readonly bands: string;
  readonly mapped: string;
  readonly sbm: string;
  readonly tmp: string;
  readonly owner: string;
}

export function bundlePaths(root: string): BundlePaths {
  const sbm = join(root, '.sbm');
  return {
    root,
    infoPlist: join(root, 'Info.plist'),
    infoBackup: join(root, 'Info.bckup'),
    token: join(root, 'token'),
    lock: join(root, 'lock'),
    bands: join(root, 'bands'),
    mapped: join(root, 'mapped'),
    sbm,
    tmp: join(sbm, 'tmp'),
    // pid of the process holding the write lock, so a second writer can be told who has it
    owner: join(sbm, 'owner'),
  };
}

const CANONICAL_BAND_NAME = /^(0|[1-9a-f][0-9a-f]*)$/;

export function bandFileName(bandIndex: number): string {
  return bandIndex.toString(16);
}

/** The band index a name stands for, or undefined when the name is not a canonical band name. */
export function parseBandName(name: string): number | undefined {
  if (!CANONICAL_BAND_NAME.test(name) || name.length > 13) return undefined;
  return Number.parseInt(name, 16);
}
