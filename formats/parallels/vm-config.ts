// config.pvs, the settings of a Parallels virtual machine (NAME.pvm/config.pvs): the disks are
// ParallelsVirtualMachine/Hardware/Hdd elements, each naming its disk folder in SystemName
// (relative to the .pvm folder, or absolute). A disk's number is its `id` attribute (Parallels
// calls the first hdd0), or its Index child, or its position.

import { join } from 'node:path';
import { SbmError } from '../../lib/errors.js';
import { childText, children, parseXml } from '../xml/safe-xml.js';
import { MAX_CONFIG_BYTES, VM_CONFIG_NAME } from './constants.js';
import { resolveInside } from './inside-path.js';
import { readSmallFile } from './small-file.js';

export interface VmDisk {
  readonly index: number;
  readonly systemName: string;
  /** Resolved path of the disk folder. */
  readonly folder: string;
}

function indexOf(element: unknown, position: number): number {
  const id = (element as { $?: Record<string, string> }).$?.id?.trim() ?? childText(element, 'Index');
  return id !== undefined && /^\d{1,6}$/.test(id) ? Number(id) : position;
}

export async function listVmDisks(folder: string, allowOutside: boolean): Promise<VmDisk[]> {
  const path = join(folder, VM_CONFIG_NAME);
  const document = await parseXml(await readSmallFile(path, MAX_CONFIG_BYTES, 'Parallels VM configuration'), {
    what: 'Parallels VM configuration',
    path,
    maxBytes: MAX_CONFIG_BYTES,
  });
  const root = document.ParallelsVirtualMachine;
  if (root === undefined) throw new SbmError('SBM_CORRUPT', `${path}: root element is not <ParallelsVirtualMachine>`, { path });
  const disks: VmDisk[] = [];
  let position = 0;
  for (const element of children(children(root, 'Hardware')[0], 'Hdd')) {
    const systemName = childText(element, 'SystemName');
    const index = indexOf(element, position++);
    if (systemName === undefined || systemName === '') continue; // a drive slot without a disk file
    if (disks.some((disk) => disk.index === index)) throw new SbmError('SBM_CORRUPT', `${path}: two disks numbered ${index}`, { path });
    const resolved = await resolveInside(systemName, { folder, namedBy: path, what: 'disk', allowOutside, directory: true });
    disks.push({ index, systemName, folder: resolved });
  }
  disks.sort((a, b) => a.index - b.index);
  return disks;
}

/** The disk `--disk N` names; without N the boot disk hdd0 (else the lowest-numbered). */
export function pickVmDisk(folder: string, disks: readonly VmDisk[], wanted: number | undefined): VmDisk {
  if (disks.length === 0) throw new SbmError('SBM_NOT_FOUND', `${folder}: config.pvs lists no hard disk`, { path: folder });
  if (wanted === undefined) return disks.find((disk) => disk.index === 0) ?? (disks[0] as VmDisk);
  const found = disks.find((disk) => disk.index === wanted);
  if (found === undefined) {
    throw new SbmError('SBM_USAGE', `${folder}: no disk ${wanted} (disks: ${disks.map((disk) => disk.index).join(', ')})`, {
      path: folder,
    });
  }
  return found;
}
