// Raw images have no magic: this format is the fallback for any regular file that no other
// format claims, as in qemu-img.

import type { ImageFormat } from '../image-format.js';
import { RawImage } from './raw-image.js';

export const rawFormat: ImageFormat = {
  name: 'raw',
  detect: (probe) => !probe.isDirectory,
  open: (path) => RawImage.open(path),
};
