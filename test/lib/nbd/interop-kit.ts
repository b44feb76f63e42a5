// Shared setup for NBD interop tests: a sparse bundle served in-process, torn down with the test.

import type { ExecutionContext } from 'ava';
import { join } from 'node:path';

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
  options: ServeNbdOptions & { bandSizeBytes?: number; prepare?: (bundle: SparseBundle) => Promise<void> } = {},
): Promise<ServedBundle> {
  const dir = await tempDir(t, 'sbm-nbd-interop-');
  const bundlePath = join(dir, 'disk.sparsebundle');
  const bundle = await SparseBundle.create(bundlePath, { sizeBytes, bandSizeBytes: options.bandSizeBytes ?? 8 * MIB });
  await options.prepare?.(bundle);
  const server = await serveNbd(bundle, options);
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
