// `sbm export --format vhdx`: writes any BlockDevice as a dynamic VHDX (32 MiB blocks); holes and
// all-zero blocks take no space (vhdx-writer.ts has the layout).

import { checkOnlySubformat } from '../export-subformat.js';
import type { ImageExporter } from '../image-format.js';
import { writeNewImageFile } from '../new-image-file.js';
import type { RunWalkStats } from '../nonzero-runs.js';
import { vhdxWritePlan, writeDynamicVhdx } from './vhdx-writer.js';

export const vhdxExporter: ImageExporter = {
  name: 'vhdx',
  subformats: ['dynamic'],
  async export(source, outPath, options) {
    checkOnlySubformat('VHDX', 'dynamic', options.subformat);
    const started = process.hrtime.bigint();
    const plan = vhdxWritePlan(source.sizeBytes, outPath);
    const stats: RunWalkStats = { bytesRead: 0 };
    const bytesWritten = await writeNewImageFile(outPath, 'VHDX', (handle) => writeDynamicVhdx(source, handle, plan, options.copy, stats));
    return { bytesRead: stats.bytesRead, bytesWritten, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  },
};
