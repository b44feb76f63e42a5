// Folders that hold a disk: a sparse bundle (Info.plist / Info.bckup), a Parallels disk
// (`NAME.hdd/` with DiskDescriptor.xml and .hds layers), a Parallels virtual machine
// (`NAME.pvm/` with config.pvs), an unpacked OVF package (a folder with an .ovf). Named by what
// the folder contains, never by its extension. A sparse bundle (encrypted ones included: the
// bundle reader refuses those with SBM_ENCRYPTED) and any unknown folder return undefined and
// are left to the bundle reader, which names what is missing.

import { readdir } from 'node:fs/promises';
import { fromSystemError } from '../../lib/errors.js';
import type { Detection } from './signatures.js';

const BUNDLE_PLISTS = ['Info.plist', 'Info.bckup'];
const PARALLELS_DESCRIPTOR = 'DiskDescriptor.xml';
const PARALLELS_VM_CONFIG = 'config.pvs';

export async function detectDirectory(path: string): Promise<Detection | undefined> {
  let names: string[];
  try {
    names = await readdir(path);
  } catch (error) {
    throw fromSystemError(error, 'cannot list', path);
  }
  if (names.some((name) => BUNDLE_PLISTS.includes(name))) return undefined;
  if (names.includes(PARALLELS_DESCRIPTOR)) return { name: 'parallels-hdd', label: 'Parallels (.hdd folder)' };
  if (names.includes(PARALLELS_VM_CONFIG)) return { name: 'parallels-pvm', label: 'Parallels virtual machine (.pvm folder)' };
  if (names.some((name) => /\.ovf$/i.test(name))) return { name: 'ovf', label: 'OVF folder' };
  return undefined;
}
