// UDIF detection by content: the `koly` trailer in the last 512 bytes.

import type { ImageFormat, ProbeInput } from '../image-format.js';
import { KOLY } from './layouts.js';

export function detectDmg(probe: ProbeInput): boolean {
  const tail = probe.tail;
  return !probe.isDirectory && tail !== undefined && tail.length >= KOLY.sizeBytes && KOLY.matches(tail, tail.length - KOLY.sizeBytes);
}

export const dmgFormat: ImageFormat = {
  name: 'dmg',
  detect: detectDmg,
  open: async (path, options) => (await import('./open-dmg.js')).openDmg(path, options),
};
