// Opens a VDI and, for a differencing image, its chain of parents. Everything is validated here,
// before any byte is served.
//
// A VDI diff does not name its parent's file: it holds the parent's uuidCreate (uuidLinkage).
// VirtualBox finds the file through its media registry; sbm looks in the child's own folder for
// the .vdi whose uuidCreate matches (none: SBM_NOT_FOUND; several copies: the first by name,
// with the warning SBM_VDI_PARENT_AMBIGUOUS). Files reached through symlinks leading outside the
// folder are passed over unless the caller allows outside paths. A parent whose uuidModify
// differs from the child's uuidParentModify changed after the snapshot: SBM_VDI_PARENT_MODIFIED.

import { open, readdir, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';
import { type SbmWarning, WarningList } from '../../lib/warnings.js';
import type { OpenImageOptions } from '../image-format.js';
import { VDI_PRE_HEADER_SIZE } from './constants.js';
import { VDI_HEADERS_SIZE, VDI_HEADER_V1, VDI_PRE_HEADER, vdiUuidText } from './layouts.js';
import { VdiFile } from './vdi-file.js';
import { parseVdiHeader, readBlockMap } from './vdi-header.js';
import { VdiImage } from './vdi-image.js';

/** Deeper chains than this are refused (VirtualBox snapshot trees rarely pass a few dozen). */
export const MAX_CHAIN_DEPTH = 256;

async function openFile(path: string): Promise<VdiFile> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, 'cannot open VDI', path);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new SbmError('SBM_UNSUPPORTED', `${path} is not a regular file`, { path });
    return new VdiFile(path, handle, info.size);
  } catch (error) {
    await handle.close();
    throw error instanceof SbmError ? error : fromSystemError(error, 'cannot open VDI', path);
  }
}

function isInside(folder: string, candidate: string): boolean {
  const rel = relative(folder, candidate);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** uuidCreate of the VDI at `path`, or undefined when it is not a readable VDI. */
async function uuidCreateOf(path: string): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return undefined; // unreadable candidates are simply not the parent
  }
  try {
    if (!(await handle.stat()).isFile()) return undefined;
    const head = Buffer.alloc(VDI_HEADERS_SIZE);
    if ((await readFully(handle, head, 0)) < head.length || !VDI_PRE_HEADER.matches(head)) return undefined;
    return Buffer.from(VDI_HEADER_V1.reader('uuidCreate')(head, VDI_PRE_HEADER_SIZE));
  } finally {
    await handle.close();
  }
}

/** The real path of the .vdi beside `child` whose uuidCreate is `linkage`. */
async function findParent(
  child: VdiFile,
  childReal: string,
  linkage: Buffer,
  allowOutside: boolean,
  warn: (warning: SbmWarning) => void,
): Promise<string> {
  const folder = dirname(childReal);
  let names: string[];
  try {
    names = (await readdir(folder)).filter((name) => name.toLowerCase().endsWith('.vdi')).sort();
  } catch (error) {
    throw fromSystemError(error, 'cannot list the folder of', child.path);
  }
  const matches: string[] = [];
  for (const name of names) {
    let real: string;
    try {
      real = await realpath(join(folder, name));
    } catch {
      continue; // a dangling link is not the parent
    }
    if (real === childReal || (!allowOutside && !isInside(folder, real))) continue;
    const uuid = await uuidCreateOf(real);
    if (uuid?.equals(linkage)) matches.push(real);
  }
  const first = matches[0];
  if (first === undefined) {
    throw new SbmError('SBM_NOT_FOUND', `${child.path}: parent VDI {${vdiUuidText(linkage)}} not found among the .vdi files of ${folder}`, {
      path: child.path,
      uuid: vdiUuidText(linkage),
    });
  }
  if (matches.length > 1) {
    warn({
      code: 'SBM_VDI_PARENT_AMBIGUOUS',
      message: `${child.path}: ${matches.length} files hold parent {${vdiUuidText(linkage)}}; ${first} is used`,
      data: { path: child.path, candidates: matches },
    });
  }
  return first;
}

async function openLink(path: string, options: OpenImageOptions, chain: readonly string[]): Promise<VdiImage> {
  const real = await realpath(path).catch((error: unknown) => {
    throw fromSystemError(error, 'cannot open VDI', path);
  });
  if (chain.includes(real)) throw new SbmError('SBM_CORRUPT', `${path}: the VDI parent chain loops back to this image`, { path });
  if (chain.length >= MAX_CHAIN_DEPTH)
    throw new SbmError('SBM_UNSUPPORTED', `${path}: VDI parent chain deeper than ${MAX_CHAIN_DEPTH} images`, { path });
  const file = await openFile(path);
  const collected = new WarningList();
  const warn = (warning: SbmWarning): void => {
    collected.sink(warning);
    options.onWarning?.(warning);
  };
  let parent: VdiImage | undefined;
  try {
    const head = Buffer.alloc(Math.min(VDI_HEADERS_SIZE, file.sizeBytes));
    await file.readExact(head, 0, 'VDI header');
    const header = parseVdiHeader(file, head, warn);
    const { map, allocated } = await readBlockMap(file, header);
    if (header.subformat === 'differencing') {
      if (header.values.uuidLinkage.every((byte) => byte === 0))
        throw file.corrupt('differencing VDI has no parent UUID (uuidLinkage is zero)');
      const parentPath = await findParent(file, real, header.values.uuidLinkage, options.allowOutside === true, warn);
      parent = await openLink(parentPath, options, [...chain, real]);
      if (!parent.parts.header.values.uuidModify.equals(header.values.uuidParentModify)) {
        warn({
          code: 'SBM_VDI_PARENT_MODIFIED',
          message:
            `${path}: parent ${parentPath} was modified after this image was made ` +
            `(uuidModify {${vdiUuidText(parent.parts.header.values.uuidModify)}}, ` +
            `expected {${vdiUuidText(header.values.uuidParentModify)}})`,
          data: { path, parent: parentPath },
        });
      }
    }
    return new VdiImage({ file, header, map, allocatedBlocks: allocated, parent, warnings: collected.items });
  } catch (error) {
    await parent?.close();
    await file.handle.close();
    throw error;
  }
}

/** Opens a VDI (and its parents) read-only. */
export async function openVdi(path: string, options: OpenImageOptions = {}): Promise<VdiImage> {
  return openLink(path, options, []);
}
