// `sbm export --format vmdk [--subformat monolithicSparse|streamOptimized]`: writes any BlockDevice
// as a single-file VMDK; holes and all-zero grains stay unallocated.

import { open, unlink, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import type { ImageExporter } from '../image-format.js';
import type { GrainWalkStats } from './grain-source.js';
import { writeMonolithicSparse } from './sparse-writer.js';
import { writeStreamOptimized } from './stream-writer.js';

const SUBFORMATS = ['monolithicSparse', 'streamOptimized'] as const;

/**
 * The extent name written into the embedded descriptor. libvmdk insists it matches the file name,
 * so a staging name from lib/fs/staged-output.ts (".NAME.sbm-partial-PID-RAND") maps back to NAME.
 */
export function finalFileName(outPath: string): string {
  const name = basename(outPath);
  return /^\.(.+)\.sbm-partial-[\w-]+$/.exec(name)?.[1] ?? name;
}

export const vmdkExporter: ImageExporter = {
  name: 'vmdk',
  subformats: SUBFORMATS,
  async export(source, outPath, options) {
    const subformat = options.subformat ?? 'monolithicSparse';
    const writer = { monolithicSparse: writeMonolithicSparse, streamOptimized: writeStreamOptimized }[
      subformat as (typeof SUBFORMATS)[number]
    ];
    if (writer === undefined) {
      throw new SbmError('SBM_USAGE', `unknown VMDK subformat "${subformat}" (known: ${SUBFORMATS.join(', ')})`, { subformat });
    }
    const started = process.hrtime.bigint();
    let handle: FileHandle;
    try {
      handle = await open(outPath, 'wx', 0o644);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST')
        throw new SbmError('SBM_EXISTS', `${outPath} already exists`, { path: outPath });
      throw fromSystemError(error, 'cannot create VMDK', outPath);
    }
    const stats: GrainWalkStats = { bytesRead: 0, bytesDone: 0 };
    try {
      const bytesWritten = await writer(source, handle, outPath, finalFileName(outPath), options.copy, stats);
      await handle.sync();
      await handle.close();
      return { bytesRead: stats.bytesRead, bytesWritten, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
    } catch (error) {
      await handle.close().catch(() => undefined); // the write error matters more than a close error
      await unlink(outPath).catch(() => undefined); // we created it: leave nothing half-written behind
      throw error;
    }
  },
};
