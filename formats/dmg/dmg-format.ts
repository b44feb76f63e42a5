// UDIF detection by content: the `koly` trailer in the last 512 bytes.

import type { ImageFormat, ProbeInput } from '../image-format.js';
import { KOLY } from './layouts.js';
import { openDmg } from './open-dmg.js';

export function detectDmg(probe: ProbeInput): boolean {
  const tail = probe.tail;
  return !probe.isDirectory && tail !== undefined && tail.length >= KOLY.sizeBytes && KOLY.matches(tail, tail.length - KOLY.sizeBytes);
}

export const dmgFormat: ImageFormat = {
  name: 'dmg',
  detect: detectDmg,
  open: (path, options) => openDmg(path, options),
};
