// convert: any BlockDevice (a format reader) -> a new sparse bundle, built under a temporary name
// and renamed into place when complete. Zero and unallocated regions create no bands.

import type { BlockDevice } from '../block-device.js';
import { BundleLock } from '../bundle/bundle-lock.js';
import { bundlePaths } from '../bundle/bundle-paths.js';
import { isSbmError } from '../errors.js';
import type { NewBundleEncryption } from '../bundle/bundle-encryption.js';
import { DEFAULT_BAND_SIZE_BYTES, SIZE_ALIGNMENT_BYTES } from '../bundle/constants.js';
import { type CopyOptions, type CopyResult, copiesItself, copyDevice } from '../copy-device.js';
import { SparseBundle } from '../engine/sparse-bundle.js';
import { withStagedOutput } from '../fs/staged-output.js';
import type { WarningSink } from '../warnings.js';
import { debugLog } from '../debug-log.js';

const debug = debugLog('sbm:convert');

/** Band syncs in flight during a convert: they hold file-pool threads the copy also needs. */
const SYNCS_IN_FLIGHT = 2;

export interface ConvertOptions {
  readonly bandSizeBytes?: number;
  readonly force?: boolean;
  readonly copy?: CopyOptions;
  readonly onWarning?: WarningSink;
  /** Encrypt the new bundle (the source is read as plaintext, the bands are written as ciphertext). */
  readonly encryption?: NewBundleEncryption;
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
        const probe = await SparseBundle.open(existing, { readOnly: false }).catch(async (error: unknown) => {
          // An encrypted bundle cannot be opened without its password, but its lock tells the same.
          if (!isSbmError(error, 'SBM_ENCRYPTED')) throw error;
          return BundleLock.acquire(bundlePaths(existing), 'exclusive', options.onWarning ?? (() => undefined));
        });
        await ('release' in probe ? probe.release() : probe.close());
      },
    },
    async (stagingPath) => {
      // Untracked while under construction: no token can name a bundle that does not exist yet,
      // and a durable change record per new band would cost one fdatasync each.
      debug('convert to %s: %d bytes in %d-byte bands, building in %s', bundlePath, sizeBytes, bandSizeBytes, stagingPath);
      const bundle = await SparseBundle.create(stagingPath, {
        sizeBytes,
        bandSizeBytes,
        onWarning: options.onWarning,
        untracked: true,
        encryption: options.encryption,
      });
      // Each finished band is made durable while the next ones are copied, so the flush before
      // the rename has only the last few left to wait for.
      const syncs = new BandSyncQueue(bundle);
      try {
        const copy = options.copy;
        const copyOptions: CopyOptions = {
          chunkBytes: bandSizeBytes,
          ...copy,
          onChunkWritten: (offset, length) => {
            copy?.onChunkWritten?.(offset, length);
            syncs.add(offset, length);
          },
        };
        // A compressed stream (a gzip disk in an OVA) is read once, front to back, with no temporary copy.
        const copied = copiesItself(source) ? await source.copyInOrder(bundle, copyOptions) : await copyDevice(source, bundle, copyOptions);
        debug('copied: %d bytes read, %d written; waiting for the last band syncs', copied.bytesRead, copied.bytesWritten);
        await syncs.settle();
        const bandsWritten = bundle.bandsPresent().length;
        debug('%d band(s) durable; renaming into place', bandsWritten);
        return { ...copied, bundlePath, sizeBytes, bandSizeBytes, bandsWritten };
      } finally {
        await syncs.settle().catch(() => undefined); // after a failure: the first error is already on its way
        await bundle.close();
      }
    },
  );
}

/** Band syncs started in the background, a few at a time; settle() waits for all of them. */
class BandSyncQueue {
  private readonly waiting: Array<readonly [number, number]> = [];
  private running = 0;
  private failure: { error: unknown } | undefined;
  private idle: Array<() => void> = [];

  constructor(private readonly bundle: SparseBundle) {}

  add(offset: number, length: number): void {
    this.waiting.push([offset, length]);
    this.pump();
  }

  /** Resolves when every sync added so far has ended; rejects with the first failure. */
  async settle(): Promise<void> {
    if (this.running > 0 || this.waiting.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (this.failure !== undefined) throw this.failure.error;
  }

  private pump(): void {
    while (this.running < SYNCS_IN_FLIGHT && this.failure === undefined) {
      const next = this.waiting.shift();
      if (next === undefined) break;
      this.running++;
      this.bundle.flushBands(next[0], next[1]).then(
        () => this.done(),
        (error: unknown) => {
          this.failure ??= { error };
          this.done();
        },
      );
    }
    if (this.running === 0 && (this.waiting.length === 0 || this.failure !== undefined)) {
      this.waiting.length = 0;
      for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  private done(): void {
    this.running--;
    this.pump();
  }
}
