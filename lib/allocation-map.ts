// The allocation map of any BlockDevice, in `qemu-img map --output=json`'s terms: runs with
// `data` (bytes stored) and `zero` (reads as zeros), `present` when the device stores the run at
// all (a hole is not present). Consecutive runs of the same kind are merged, as qemu merges them.

import type { BlockDevice, ExtentKind } from './block-device.js';

export interface MapEntry {
  readonly start: number;
  readonly length: number;
  readonly present: boolean;
  readonly zero: boolean;
  readonly data: boolean;
}

/** Bytes asked of extents() at once, so a huge disk's map is built in bounded steps. */
const MAP_STEP_BYTES = 1024 * 1024 * 1024;

export async function allocationMap(device: BlockDevice): Promise<MapEntry[]> {
  const entries: MapEntry[] = [];
  for (let offset = 0; offset < device.sizeBytes; offset += MAP_STEP_BYTES) {
    const length = Math.min(MAP_STEP_BYTES, device.sizeBytes - offset);
    for (const extent of await device.extents(offset, length)) {
      const entry = { start: extent.offset, length: extent.length, ...flagsOf(extent.kind) };
      const last = entries.at(-1);
      if (last !== undefined && last.data === entry.data && last.present === entry.present && last.start + last.length === entry.start) {
        entries[entries.length - 1] = { ...last, length: last.length + entry.length };
      } else {
        entries.push(entry);
      }
    }
  }
  return entries;
}

function flagsOf(kind: ExtentKind): Pick<MapEntry, 'present' | 'zero' | 'data'> {
  if (kind === 'data') return { present: true, zero: false, data: true };
  if (kind === 'zero') return { present: true, zero: true, data: false };
  return { present: false, zero: true, data: false };
}
