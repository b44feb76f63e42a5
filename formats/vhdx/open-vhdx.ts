// Opens a VHDX and, for a differencing disk, its chain of parents. Everything is validated here,
// before any byte is served: header section, metadata, the whole BAT, the parent's identity.
//
// A parent may be any format sbm reads (the spec expects a VHDX; other formats open through
// openImage). The chain of files being opened travels in an AsyncLocalStorage, so a loop is
// caught even when it passes through another format's reader (VHDX -> qcow2 -> VHDX ...).

import { AsyncLocalStorage } from 'node:async_hooks';
import { open, realpath } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { type SbmWarning, WarningList, type WarningSink } from '../../lib/warnings.js';
import type { ImageReader, OpenImageOptions } from '../image-format.js';
import { BlockAllocationTable } from './bat.js';
import { VHDX_FILE_SIGNATURE } from './constants.js';
import { guidToText, isZeroGuid, parseGuid } from './guid.js';
import { type HeaderSection, readHeaderSection } from './header-section.js';
import { replayLog } from './log-replay.js';
import { readMetadata } from './metadata.js';
import { type ParentLocator, resolveParentPath } from './parent-locator.js';
import { VhdxFile } from './vhdx-file.js';
import { VhdxImage } from './vhdx-image.js';

/** Deeper chains than this are refused (Hyper-V checkpoints rarely pass a few dozen). */
export const MAX_CHAIN_DEPTH = 256;

const openingChain = new AsyncLocalStorage<readonly string[]>();

async function openFile(path: string): Promise<VhdxFile> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, 'cannot open VHDX', path);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new SbmError('SBM_UNSUPPORTED', `${path} is not a regular file`, { path });
    return new VhdxFile(path, handle, info.size);
  } catch (error) {
    await handle.close();
    throw error instanceof SbmError ? error : fromSystemError(error, 'cannot open VHDX', path);
  }
}

function linkageMatches(locator: ParentLocator, dataWriteGuid: Buffer): boolean {
  return [locator.parentLinkage, locator.parentLinkage2].some((value) => {
    const guid = value === undefined ? undefined : parseGuid(value);
    return guid?.equals(dataWriteGuid);
  });
}

async function startsLikeVhdx(path: string): Promise<boolean> {
  const file = await openFile(path);
  try {
    if (file.sizeBytes < VHDX_FILE_SIGNATURE.length) return false;
    return (await file.read(VHDX_FILE_SIGNATURE.length, 0, 'file type identifier')).toString('latin1') === VHDX_FILE_SIGNATURE;
  } finally {
    await file.handle.close();
  }
}

/** A parent in another format opens through the registry, with the chain so far in scope. */
async function openOtherFormat(path: string, options: OpenImageOptions, chain: readonly string[]): Promise<ImageReader> {
  // Imported when needed: the registry imports this module.
  const { openImage } = await import('../index.js');
  return openingChain.run(chain, () => openImage(path, options));
}

async function openParent(
  child: VhdxFile,
  locator: ParentLocator,
  options: OpenImageOptions,
  chain: readonly string[],
  warn: (warning: SbmWarning) => void,
): Promise<ImageReader> {
  const parentPath = await resolveParentPath(child.path, locator, options.allowOutside === true);
  if (chain.includes(parentPath)) throw child.corrupt(`VHDX parent chain loops back to ${parentPath}`);
  if (chain.length >= MAX_CHAIN_DEPTH) throw child.unsupported(`VHDX parent chain is deeper than ${MAX_CHAIN_DEPTH} links`);
  const nested = [...chain, parentPath];
  const parent = (await startsLikeVhdx(parentPath))
    ? await openLink(parentPath, options, nested)
    : await openOtherFormat(parentPath, options, nested);
  if (parent instanceof VhdxImage && !linkageMatches(locator, parent.section.header.dataWriteGuid)) {
    try {
      warn({
        code: 'SBM_VHDX_PARENT_MISMATCH',
        message:
          `${child.path}: parent_linkage ${locator.parentLinkage} does not match ` +
          `the DataWriteGuid ${guidToText(parent.section.header.dataWriteGuid)} of ${parentPath} ` +
          '(the parent changed after this disk was made)',
        data: { path: child.path, parent: parentPath },
      });
    } catch (error) {
      await parent.close(); // --strict turns the warning into a failure: the caller never gets the parent to close
      throw error;
    }
  }
  return parent;
}

async function openLink(path: string, options: OpenImageOptions, chain: readonly string[]): Promise<VhdxImage> {
  const file = await openFile(path);
  const collected = new WarningList();
  const warn = (warning: SbmWarning): void => {
    collected.sink(warning);
    options.onWarning?.(warning);
  };
  let parent: ImageReader | undefined;
  try {
    const section = await readHeaderSection(file, warn);
    if (!isZeroGuid(section.header.logGuid)) await replayPendingLog(file, section, warn);
    const metadata = await readMetadata(file, section.metadata);
    const bat = await BlockAllocationTable.load(file, section.bat, metadata, [section.bat, section.metadata, section.log]);
    if (metadata.parentLocator !== undefined) parent = await openParent(file, metadata.parentLocator, options, chain, warn);
    return new VhdxImage(file, section, metadata, bat, parent, collected.items);
  } catch (error) {
    await parent?.close();
    await file.handle.close();
    throw error;
  }
}

/**
 * Replays the log the current header names into `file` (in memory), or, when the log holds no
 * valid entry for it, warns and reads the file as it stands, as qemu-img does.
 */
async function replayPendingLog(file: VhdxFile, section: HeaderSection, warn: WarningSink): Promise<void> {
  const logGuid = guidToText(section.header.logGuid);
  const overlay = await replayLog(file, section.log, section.header.logGuid);
  if (overlay !== undefined) {
    file.useReplayedLog(overlay);
    return;
  }
  warn({
    code: 'SBM_VHDX_LOG_INVALID',
    message:
      `${file.path}: the header names a log to replay (LogGuid ${logGuid}) ` +
      'but the log holds no valid entry for it; read as the file stands',
    data: { path: file.path, logGuid },
  });
}

/** Opens a VHDX (and its parents) read-only. */
export async function openVhdx(path: string, options: OpenImageOptions = {}): Promise<VhdxImage> {
  const real = await realpath(path).catch((error: unknown) => {
    throw fromSystemError(error, 'cannot open VHDX', path);
  });
  const outer = openingChain.getStore() ?? [];
  if (outer.includes(real)) throw new SbmError('SBM_CORRUPT', `${path}: the parent chain loops back to this disk`, { path });
  return openLink(path, options, [...outer, real]);
}
