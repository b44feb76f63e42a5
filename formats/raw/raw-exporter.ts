// Export to a raw image: a sparse file where the source's holes and zero blocks stay holes.

import { copyDevice } from '../../lib/copy-device.js';
import type { ImageExporter } from '../image-format.js';
import { RawImage } from './raw-image.js';

export const rawExporter: ImageExporter = {
  name: 'raw',
  async export(source, outPath, options) {
    const target = await RawImage.create(outPath, source.sizeBytes);
    try {
      return await copyDevice(source, target, options.copy);
    } finally {
      await target.close();
    }
  },
};
