// VDI detection by content: the signature 0xBEDA107F at offset 0x40 (the text before it varies
// with the writer and is never checked).

import type { ImageFormat, ProbeInput } from '../image-format.js';
import { VDI_PRE_HEADER } from './layouts.js';

export function detectVdi(probe: ProbeInput): boolean {
  return !probe.isDirectory && VDI_PRE_HEADER.matches(probe.head);
}

export const vdiFormat: ImageFormat = {
  name: 'vdi',
  detect: detectVdi,
  open: async (path, options) => (await import('./open-vdi.js')).openVdi(path, options),
};
