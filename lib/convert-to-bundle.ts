// convert: any BlockDevice (a format reader) -> a new sparse bundle, built under a temporary name
// and renamed into place when complete. Zero and unallocated regions create no bands.

import { type BlockDevice } from './block-device.js';
import { DEFAULT_BAND_SIZE_BYTES, SIZE_ALIGNMENT_BYTES } from './bundle/constants.js';
import { type CopyOptions, type CopyResult, copyDevice } from './copy-device.js';
import { SparseBundle } from './engine/sparse-bundle.js';
import { withStagedOutput } from './fs/staged-output.js';
import type { WarningSink } from './warnings.js';

export interface ConvertOptions {
  readonly bandSizeBytes?: number;
  readonly force?: boolean;
  readonly copy?: CopyOptions;
  readonly onWarning?: WarningSink;
}

export interface ConvertResult extends CopyResult {
  readonly bundlePath: string;
  readonly sizeBytes: number;
  readonly bandSizeBytes: number;
  readonly bandsWritten: number;
}

export async function convertToBundle(source: BlockDevice, bundlePath: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  const bandSizeBytes = options.bandSizeBytes ?? DEFAULT_BAND_SIZE_BYTES;
  const sizeBytes = Math.ceil(source.sizeBytes / SIZE_ALIGNMENT_BYTES) * SIZE_ALIGNMENT_BYTES;
  if (sizeBytes !== source.sizeBytes) {
    options.onWarning?.({
      code: 'SBM_SIZE_ROUNDED',
      message: `source size ${source.sizeBytes} is not a multiple of 512; the bundle is ${sizeBytes} bytes (zero-padded)`,
    });
  }
  return withStagedOutput(
    bundlePath,
    {
      force: options.force,
      // Replacing a bundle that another process has open would pull it from under that process.
      beforeReplace: async (existing) => {
        const probe = await SparseBundle.open(existing, { readOnly: false });
        await probe.close();
      },
    },
    async (stagingPath) => {
      // Untracked while under construction: no token can name a bundle that does not exist yet,
      // and a durable change record per new band would cost one fdatasync each.
      const bundle = await SparseBundle.create(stagingPath, { sizeBytes, bandSizeBytes, onWarning: options.onWarning, untracked: true });
      try {
        const copied = await copyDevice(source, bundle, { chunkBytes: bandSizeBytes, ...options.copy });
        const bandsWritten = bundle.bandsPresent().length;
        return { ...copied, bundlePath, sizeBytes, bandSizeBytes, bandsWritten };
      } finally {
        await bundle.close();
      }
    },
  );
}
