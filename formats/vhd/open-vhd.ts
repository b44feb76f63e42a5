// Opens a VHD and, for a differencing disk, its chain of parents. Everything is validated here,
// before any byte is served: footer (and its copy), dynamic header, the whole BAT, the parent.
//
// A parent may be any format sbm reads (it opens through the registry's openImage). The files
// being opened travel in an AsyncLocalStorage, so a loop is caught even through another format.
// The parent's identity is its footer's unique id; a differencing disk records it, and a
// mismatch (the parent was replaced or changed identity) is the warning SBM_VHD_PARENT_MISMATCH.

import { AsyncLocalStorage } from 'node:async_hooks';
import { open, realpath } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { type SbmWarning, WarningList } from '../../lib/warnings.js';
import type { ImageReader, OpenImageOptions } from '../image-format.js';
import { VHD_DISK_TYPE_FIXED } from './constants.js';
import { type VhdDynamicDisk, readDynamicDisk } from './dynamic-header.js';
import { parentNames, resolveParentPath } from './parent-path.js';
import { VhdFile } from './vhd-file.js';
import { readFooter } from './vhd-footer.js';
import { VhdImage } from './vhd-image.js';

/** Deeper chains than this are refused. */
export const MAX_CHAIN_DEPTH = 256;

const openingChain = new AsyncLocalStorage<readonly string[]>();

async function openFile(path: string): Promise<VhdFile> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, 'cannot open VHD', path);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new SbmError('SBM_UNSUPPORTED', `${path} is not a regular file`, { path });
    return new VhdFile(path, handle, info.size);
  } catch (error) {
    await handle.close();
    throw error instanceof SbmError ? error : fromSystemError(error, 'cannot open VHD', path);
  }
}

async function openParent(
  file: VhdFile,
  dynamic: VhdDynamicDisk,
  options: OpenImageOptions,
  chain: readonly string[],
  warn: (warning: SbmWarning) => void,
): Promise<{ parent: ImageReader; parentPath: string }> {
  const parentPath = await resolveParentPath(file, await parentNames(file, dynamic.header), options.allowOutside === true);
  if (chain.includes(parentPath)) throw file.corrupt(`VHD parent chain loops back to ${parentPath}`);
  if (chain.length >= MAX_CHAIN_DEPTH) throw file.unsupported(`VHD parent chain is deeper than ${MAX_CHAIN_DEPTH} links`);
  // Imported when needed: the registry imports this module, and parents of any format open through it.
  const { openImage } = await import('../index.js');
  const parent = await openingChain.run(chain, () => openImage(parentPath, options));
  if (parent instanceof VhdImage && !parent.parts.footer.values.uniqueId.equals(dynamic.header.parentUniqueId)) {
    try {
      warn({
        code: 'SBM_VHD_PARENT_MISMATCH',
        message:
          `${file.path}: parent id ${dynamic.header.parentUniqueId.toString('hex')} ` +
          `does not match the unique id ${parent.parts.footer.values.uniqueId.toString('hex')} of ${parentPath} ` +
          '(the parent is another disk or changed after this one was made)',
        data: { path: file.path, parent: parentPath },
      });
    } catch (error) {
      await parent.close(); // --strict turns the warning into a failure: the caller never gets the parent to close
      throw error;
    }
  }
  return { parent, parentPath };
}

async function openLink(path: string, options: OpenImageOptions, chain: readonly string[]): Promise<VhdImage> {
  const file = await openFile(path);
  const collected = new WarningList();
  const warn = (warning: SbmWarning): void => {
    collected.sink(warning);
    options.onWarning?.(warning);
  };
  let parent: ImageReader | undefined;
  try {
    const footer = await readFooter(file, warn);
    if (footer.diskType === VHD_DISK_TYPE_FIXED) {
      const needed = footer.sizeBytes + footer.trailerBytes;
      if (file.sizeBytes < needed)
        throw file.corrupt(`fixed VHD of ${footer.sizeBytes} bytes needs a ${needed}-byte file, it has ${file.sizeBytes}: truncated`);
      return new VhdImage({ file, footer, dynamic: undefined, parent: undefined, parentPath: undefined, warnings: collected.items });
    }
    const dynamic = await readDynamicDisk(file, footer, warn);
    let parentPath: string | undefined;
    if (footer.subformat === 'differencing') ({ parent, parentPath } = await openParent(file, dynamic, options, chain, warn));
    return new VhdImage({ file, footer, dynamic, parent, parentPath, warnings: collected.items });
  } catch (error) {
    await parent?.close();
    await file.handle.close();
    throw error;
  }
}

/** Opens a VHD (and its parents) read-only. */
export async function openVhd(path: string, options: OpenImageOptions = {}): Promise<VhdImage> {
  const real = await realpath(path).catch((error: unknown) => {
    throw fromSystemError(error, 'cannot open VHD', path);
  });
  const outer = openingChain.getStore() ?? [];
  if (outer.includes(real)) throw new SbmError('SBM_CORRUPT', `${path}: the parent chain loops back to this disk`, { path });
  return openLink(path, options, [...outer, real]);
}
