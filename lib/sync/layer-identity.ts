// Who a source layer is, as `sbm sync` remembers it between runs: the format's own identifiers
// (CID, UUIDs) and, for every file of the layer, device, inode, size, mtime and ctime. A layer
// whose identity is unchanged holds the same bytes it held at the last sync; any write to it
// moves its mtime (and its ctime), so a changed layer is never taken for an unchanged one.

import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fromSystemError } from '../errors.js';
import type { ImageLayer } from '../image-layers.js';

export interface FileIdentity {
  readonly path: string;
  readonly dev: string;
  readonly ino: string;
  readonly size: string;
  readonly mtimeNs: string;
  readonly ctimeNs: string;
}

export interface LayerIdentity {
  readonly ids: Readonly<Record<string, string>>;
  readonly files: readonly FileIdentity[];
}

const NS_PER_SECOND = 1_000_000_000n;
/** A write this close after a whole-second mtime may not have moved it on a coarse filesystem. */
const COARSE_CLOCK_GUARD_NS = 2n * NS_PER_SECOND;

export async function fileIdentity(path: string): Promise<FileIdentity> {
  try {
    const info = await stat(path, { bigint: true });
    return {
      // Absolute: a file named one way on the command line and another way as a parent (a
      // qcow2 synced as `a.qcow2`, then read as the backing file of an overlay) is one layer.
      path: resolve(path),
      dev: info.dev.toString(),
      ino: info.ino.toString(),
      size: info.size.toString(),
      mtimeNs: info.mtimeNs.toString(),
      ctimeNs: info.ctimeNs.toString(),
    };
  } catch (error) {
    throw fromSystemError(error, 'cannot stat source layer', path);
  }
}

export async function layerIdentity(layer: ImageLayer): Promise<LayerIdentity> {
  const files: FileIdentity[] = [];
  for (const path of layer.files) files.push(await fileIdentity(path));
  return { ids: { ...layer.ids }, files };
}

export function sameLayer(a: LayerIdentity, b: LayerIdentity): boolean {
  return JSON.stringify(a.ids) === JSON.stringify(b.ids) && sameFiles(a.files, b.files);
}

function sameFiles(a: readonly FileIdentity[], b: readonly FileIdentity[]): boolean {
  return (
    a.length === b.length &&
    a.every((file, index) => {
      const other = b[index];
      return (
        other !== undefined &&
        file.path === other.path &&
        file.dev === other.dev &&
        file.ino === other.ino &&
        file.size === other.size &&
        file.mtimeNs === other.mtimeNs &&
        file.ctimeNs === other.ctimeNs
      );
    })
  );
}

/**
 * True when a later write to the layer could leave its mtime unchanged: the filesystem keeps whole
 * seconds (HFS+, some network shares) and the mtime is within two seconds of `nowNs`.
 */
export function mayHideWrites(layer: LayerIdentity, nowNs: bigint): boolean {
  return layer.files.some((file) => {
    const mtime = BigInt(file.mtimeNs);
    return mtime % NS_PER_SECOND === 0n && nowNs - mtime < COARSE_CLOCK_GUARD_NS;
  });
}
