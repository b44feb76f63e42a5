// Shared setup for NBD interop tests: a sparse bundle served in-process, torn down with the test.

import type { ExecutionContext } from 'ava';
import { join } from 'node:path';

import type { BlockDevice } from '../../../lib/block-device.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { type NbdServerHandle, type ServeNbdOptions, serveNbd } from '../../../lib/nbd/serve-nbd.js';
import { tempDir } from '../../helpers/tools.js';

export const MIB = 1024 * 1024;

export interface ServedBundle {
  readonly dir: string;
  readonly bundlePath: string;
  readonly bundle: SparseBundle;
  readonly server: NbdServerHandle;
  /** Stops the server and closes the bundle (idempotent). */
  stop(): Promise<void>;
}

export async function serveBundle(
  t: ExecutionContext,
  sizeBytes: number,
  options: ServeNbdOptions & {
    bandSizeBytes?: number;
    prepare?: (bundle: SparseBundle) => Promise<void>;
    /** Serve a wrapper of the bundle instead (e.g. one that records requests). */
    wrap?: (bundle: SparseBundle) => BlockDevice;
  } = {},
): Promise<ServedBundle> {
  const dir = await tempDir(t, 'sbm-nbd-interop-');
  const bundlePath = join(dir, 'disk.sparsebundle');
  const bundle = await SparseBundle.create(bundlePath, { sizeBytes, bandSizeBytes: options.bandSizeBytes ?? 8 * MIB });
  await options.prepare?.(bundle);
  const server = await serveNbd(options.wrap?.(bundle) ?? bundle, options);
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        await server.close();
      } finally {
        await bundle.close();
      }
    })();
    return stopping;
  };
  t.teardown(stop);
  return { dir, bundlePath, bundle, server, stop };
}

/** Delegates to a device and records which bands each kind of change touched. */
export function recordingDevice(inner: SparseBundle): { device: BlockDevice; written: Set<number>; zeroed: Set<number> } {
  const written = new Set<number>();
  const zeroed = new Set<number>();
  const bands = (offset: number, length: number, into: Set<number>): void => {
    if (length === 0) return;
    const band = inner.bandSizeBytes;
    for (let index = Math.floor(offset / band); index <= Math.floor((offset + length - 1) / band); index++) into.add(index);
  };
  const device: BlockDevice = {
    get sizeBytes() {
      return inner.sizeBytes;
    },
    readOnly: inner.readOnly,
    preferredBlockSize: inner.preferredBlockSize,
    minimumBlockSize: inner.minimumBlockSize,
    read: (offset, length) => inner.read(offset, length),
    readInto: (offset, target) => inner.readInto(offset, target),
    write: (offset, data, options) => {
      bands(offset, data.length, written);
      return inner.write(offset, data, options);
    },
    writeZeroes: (offset, length, options) => {
      bands(offset, length, zeroed);
      return inner.writeZeroes(offset, length, options);
    },
    trim: (offset, length) => {
      bands(offset, length, zeroed);
      return inner.trim(offset, length);
    },
    flush: () => inner.flush(),
    extents: (offset, length) => inner.extents(offset, length),
    close: () => inner.close(),
    [Symbol.asyncDispose]: () => inner.close(),
  };
  return { device, written, zeroed };
}
