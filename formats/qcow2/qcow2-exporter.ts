// `sbm export --format qcow2 [--compress]` and `sbm restore --to qcow2`: writes any BlockDevice as
// a new qcow2 version 3 file (qcow2-writer.ts). The file is created here and removed again if
// anything fails, so no half-written image is left behind even outside a staged output.

import { open, unlink, type FileHandle } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import type { ImageExporter } from '../image-format.js';
import { writeQcow2 } from './qcow2-writer.js';

export const qcow2Exporter: ImageExporter = {
  name: 'qcow2',
  canCompress: true,
  async export(source, outPath, options) {
    const started = process.hrtime.bigint();
    let handle: FileHandle;
    try {
      handle = await open(outPath, 'wx', 0o644);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST')
        throw new SbmError('SBM_EXISTS', `${outPath} already exists`, { path: outPath });
      throw fromSystemError(error, 'cannot create qcow2', outPath);
    }
    try {
      const result = await writeQcow2(source, handle, outPath, { compress: options.compress, copy: options.copy });
      await handle.sync();
      await handle.close();
      return { ...result, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
    } catch (error) {
      await handle.close().catch(() => undefined); // the write error matters more than a close error
      await unlink(outPath).catch(() => undefined); // we created it: leave nothing half-written behind
      throw error;
    }
  },
};
