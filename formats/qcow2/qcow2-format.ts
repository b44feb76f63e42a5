// qcow2 detection by content: the "QFI\xfb" magic followed by version 2 or 3 (version 1, the
// older qcow layout, is detected as "qcow" by formats/detect and has no reader).

import type { ImageFormat, ProbeInput } from '../image-format.js';
import { QCOW2_VERSION_2, QCOW2_VERSION_3, QCOW_MAGIC } from './constants.js';
import type { BackingOpener } from './open-qcow2.js';

export function detectQcow2(probe: ProbeInput): boolean {
  if (probe.isDirectory || probe.head.length < 8) return false;
  if (probe.head.toString('latin1', 0, 4) !== QCOW_MAGIC) return false;
  const version = probe.head.readUInt32BE(4);
  return version === QCOW2_VERSION_2 || version === QCOW2_VERSION_3;
}

/** The qcow2 reader; backing files open through `openBacking` (the registry's openImage). */
export function qcow2FormatWith(openBacking: BackingOpener): ImageFormat {
  return {
    name: 'qcow2',
    detect: detectQcow2,
    open: async (path, options) => (await import('./open-qcow2.js')).openQcow2(path, options, openBacking),
  };
}
