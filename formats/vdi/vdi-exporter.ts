// `sbm export --format vdi`: writes any BlockDevice as a dynamic VDI (1 MiB blocks); holes and
// all-zero blocks stay free (vdi-writer.ts has the layout).

import { checkOnlySubformat } from '../export-subformat.js';
import type { ImageExporter } from '../image-format.js';
import { writeNewImageFile } from '../new-image-file.js';
import type { RunWalkStats } from '../nonzero-runs.js';
import { vdiGeometry, writeDynamicVdi } from './vdi-writer.js';

export const vdiExporter: ImageExporter = {
  name: 'vdi',
  subformats: ['dynamic'],
  async export(source, outPath, options) {
    checkOnlySubformat('VDI', 'dynamic', options.subformat);
    const started = process.hrtime.bigint();
    const geometry = vdiGeometry(source.sizeBytes, outPath);
    const stats: RunWalkStats = { bytesRead: 0 };
    const bytesWritten = await writeNewImageFile(outPath, 'VDI', (handle) =>
      writeDynamicVdi(source, handle, geometry, options.copy, stats),
    );
    return { bytesRead: stats.bytesRead, bytesWritten, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  },
};
