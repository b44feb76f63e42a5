// The three Parallels entries of the format registry: a single expanding image (detected by its
// magic in formats/detect/signatures.ts), a disk folder and a VM folder (detected by what they
// contain in formats/detect/detect-directory.ts).

import type { ImageFormat } from '../image-format.js';
import { HEADER_MAGIC, HEADER_MAGIC2 } from './constants.js';

export const parallelsImageFormat: ImageFormat = {
  name: 'parallels',
  detect: (probe) => {
    const magic = probe.head.subarray(0, 16).toString('latin1');
    return !probe.isDirectory && (magic === HEADER_MAGIC || magic === HEADER_MAGIC2);
  },
  open: async (path, options) => (await import('./open-parallels.js')).openParallelsImage(path, options),
};

export const parallelsDiskFormat: ImageFormat = {
  name: 'parallels-hdd',
  detect: () => false, // folders are named by detectDirectory
  open: async (path, options) => (await import('./open-parallels.js')).openParallelsFolder(path, options),
};

export const parallelsVmFormat: ImageFormat = {
  name: 'parallels-pvm',
  detect: () => false,
  open: async (path, options) => (await import('./open-parallels.js')).openParallelsVm(path, options),
};
