// VHD detection by content: the "conectix" footer copy at offset 0 (dynamic, differencing) or
// the footer in the last 512 (or, from Virtual PC before 2004, 511) bytes (fixed).

import type { ImageFormat, ProbeInput } from '../image-format.js';
import { VHD_FOOTER_COOKIE, VHD_FOOTER_SIZE, VHD_OLD_FOOTER_SIZE } from './constants.js';

function cookieAt(bytes: Buffer | undefined, at: number): boolean {
  return bytes !== undefined && at >= 0 && bytes.toString('latin1', at, at + VHD_FOOTER_COOKIE.length) === VHD_FOOTER_COOKIE;
}

export function detectVhd(probe: ProbeInput): boolean {
  if (probe.isDirectory) return false;
  const tail = probe.tail;
  return (
    cookieAt(probe.head, 0) ||
    cookieAt(tail, (tail?.length ?? 0) - VHD_FOOTER_SIZE) ||
    cookieAt(tail, (tail?.length ?? 0) - VHD_OLD_FOOTER_SIZE)
  );
}

export const vhdFormat: ImageFormat = {
  name: 'vhd',
  detect: detectVhd,
  open: async (path, options) => (await import('./open-vhd.js')).openVhd(path, options),
};
