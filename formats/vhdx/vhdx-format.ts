// VHDX detection by content: the "vhdxfile" file type identifier at offset 0.

import type { ImageFormat, ProbeInput } from '../image-format.js';
import { VHDX_FILE_SIGNATURE } from './constants.js';

export function detectVhdx(probe: ProbeInput): boolean {
  return !probe.isDirectory && probe.head.subarray(0, VHDX_FILE_SIGNATURE.length).toString('latin1') === VHDX_FILE_SIGNATURE;
}

export const vhdxFormat: ImageFormat = {
  name: 'vhdx',
  detect: detectVhdx,
  open: async (path, options) => (await import('./open-vhdx.js')).openVhdx(path, options),
};
