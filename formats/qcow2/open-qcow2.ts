// Opens a qcow2 image read-only: header and extensions, every L1/L2 table, the snapshot table and
// bitmap directory are validated here, before any output exists; then the backing file, in
// whatever format its backing-format extension names (or its content shows), through the
// registry's opener so a qcow2 may sit on raw, VMDK or any other format sbm reads.

import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';
import type { SbmWarning } from '../../lib/warnings.js';
import type { ImageReader, OpenImageOptions } from '../image-format.js';
import { resolveBackingFile } from './backing-path.js';
import { ClusterMap } from './cluster-map.js';
import { parseQcow2Header } from './qcow2-header.js';
import { Qcow2Image } from './qcow2-image.js';
import { readBitmaps, readSnapshots } from './snapshot-table.js';

const MAX_CHAIN_DEPTH = 64;

/** How the registry opens a backing file: openImage, with `format` from the backing-format extension. */
export type BackingOpener = (path: string, options: OpenImageOptions & { format?: string }) => Promise<ImageReader>;

/** The options a qcow2 passes to its backing file's open, carrying the chain for loop detection. */
interface ChainOptions extends OpenImageOptions {
  readonly qcow2Chain?: readonly string[];
}

/** qemu's driver names for backing formats, as sbm's format names. */
const QEMU_FORMAT_NAMES: Readonly<Record<string, string>> = {
  raw: 'raw',
  qcow2: 'qcow2',
  qcow: 'qcow',
  vmdk: 'vmdk',
  vpc: 'vhd',
  vhdx: 'vhdx',
  vdi: 'vdi',
  qed: 'qed',
  parallels: 'parallels',
  bochs: 'bochs',
  cloop: 'cloop',
  luks: 'luks',
  dmg: 'udif',
};

export async function openQcow2(path: string, options: OpenImageOptions, openBacking: BackingOpener): Promise<Qcow2Image> {
  const chain = (options as ChainOptions).qcow2Chain ?? [];
  let real: string;
  try {
    real = await realpath(path);
  } catch (error) {
    throw fromSystemError(error, 'cannot open qcow2 image', path);
  }
  if (chain.includes(real)) throw new SbmError('SBM_CORRUPT', `${path}: the backing chain loops back to this file`, { path });
  if (chain.length >= MAX_CHAIN_DEPTH)
    throw new SbmError('SBM_UNSUPPORTED', `${path}: backing chain deeper than ${MAX_CHAIN_DEPTH} images`, { path });
  const info = await stat(real);
  if (!info.isFile()) throw new SbmError('SBM_UNSUPPORTED', `${path} is not a regular file`, { path });
  let handle: FileHandle;
  try {
    handle = await open(real, 'r');
  } catch (error) {
    throw fromSystemError(error, 'cannot open qcow2 image', path);
  }
  let backing: ImageReader | undefined;
  try {
    const fileSize = info.size;
    // The header, its extensions and the backing name all live in cluster 0 (at most 2 MiB).
    const head = Buffer.alloc(Math.min(fileSize, 2 * 1024 * 1024));
    await readFully(handle, head, 0);
    const header = parseQcow2Header(head, fileSize, path);
    const warnings: SbmWarning[] = [];
    const warn = (warning: SbmWarning): void => {
      warnings.push(warning);
      options.onWarning?.(warning);
    };
    if (header.dirty) {
      warn({
        code: 'SBM_QCOW2_DIRTY',
        message: `${path}: not closed cleanly (dirty bit set); refcounts may be stale, the disk's tables are read as they are`,
        data: { path },
      });
    }
    const map = await ClusterMap.load({ path, handle, fileSize, header });
    const snapshots = await readSnapshots(handle, header, fileSize, path);
    const bitmaps = await readBitmaps(handle, header, fileSize, path);
    let backingPath: string | undefined;
    if (header.backingFile !== undefined) {
      backingPath = await resolveBackingFile(real, header.backingFile, options.allowOutside === true);
      const format = backingFormat(path, header.extensions.backingFormat);
      const backingOptions: ChainOptions & { format?: string } = {
        ...options,
        qcow2Chain: [...chain, real],
        ...(format === undefined ? {} : { format }),
      };
      backing = await openBacking(backingPath, backingOptions);
    }
    return new Qcow2Image({ path, handle, header, map, backing, backingPath, snapshots, bitmaps, warnings });
  } catch (error) {
    await backing?.close();
    await handle.close();
    throw error;
  }
}

function backingFormat(path: string, name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const mapped = QEMU_FORMAT_NAMES[name];
  if (mapped === undefined) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: backing format "${name.replace(/[^\x20-\x7e]/g, '?')}" is not one sbm reads`, {
      path,
      format: name,
    });
  }
  return mapped;
}
