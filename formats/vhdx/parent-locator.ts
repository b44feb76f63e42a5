// The parent locator of a differencing VHDX ([MS-VHDX] 2.6.2.6): a LocatorType GUID and
// key/value pairs, both UTF-16LE without terminators, at offsets from the item's start.
//
//   parent_linkage       {GUID} that must equal the parent's DataWriteGuid (parent_linkage2:
//                        an alternative value a writer may leave while it updates the parent)
//   relative_path        ..\dir\parent.vhdx, relative to the child's folder
//   volume_path          \\?\Volume{GUID}\dir\parent.vhdx
//   absolute_win32_path  C:\dir\parent.vhdx
//
// The paths are tried in that order; Windows absolute forms cannot be opened here, so their file
// name is looked for beside the child. Whatever is found must lie inside the child's folder
// unless the caller allows outside paths (the rule VMDK parents follow too).

import { realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { PARENT_LINKAGE2_KEY, PARENT_LINKAGE_KEY, PARENT_PATH_KEYS, VHDX_PARENT_LOCATOR_TYPE_GUID } from './constants.js';
import { guidToBytes, guidToText } from './guid.js';
import { PARENT_LOCATOR_ENTRY, PARENT_LOCATOR_HEADER } from './layouts.js';
import type { VhdxFile } from './vhdx-file.js';

export interface ParentLocator {
  /** Keys and values in file order. */
  readonly entries: ReadonlyMap<string, string>;
  readonly parentLinkage: string;
  readonly parentLinkage2: string | undefined;
}

const LOCATOR_TYPE = guidToBytes(VHDX_PARENT_LOCATOR_TYPE_GUID);

function text(file: VhdxFile, item: Buffer, offset: number, length: number, what: string): string {
  if (offset === 0 || length === 0 || length % 2 !== 0 || offset + length > item.length) {
    throw file.corrupt(`VHDX parent locator ${what} (offset ${offset}, length ${length}) lies outside the locator item`);
  }
  return item.toString('utf16le', offset, offset + length);
}

export function parseParentLocator(file: VhdxFile, item: Buffer): ParentLocator {
  const head = PARENT_LOCATOR_HEADER.decode(item, 0, file.path);
  if (!head.locatorType.equals(LOCATOR_TYPE))
    throw file.unsupported(`VHDX parent locator type ${guidToText(head.locatorType)} is not the VHDX one`);
  const tableEnd = PARENT_LOCATOR_HEADER.sizeBytes + head.keyValueCount * PARENT_LOCATOR_ENTRY.sizeBytes;
  if (tableEnd > item.length)
    throw file.corrupt(`VHDX parent locator lists ${head.keyValueCount} entries but its item is ${item.length} bytes`);
  const entries = new Map<string, string>();
  for (let index = 0; index < head.keyValueCount; index++) {
    const entry = PARENT_LOCATOR_ENTRY.decode(item, PARENT_LOCATOR_HEADER.sizeBytes + index * PARENT_LOCATOR_ENTRY.sizeBytes);
    const key = text(file, item, entry.keyOffset, entry.keyLength, `key ${index}`);
    const value = text(file, item, entry.valueOffset, entry.valueLength, `value of "${key}"`);
    if (entries.has(key)) throw file.corrupt(`VHDX parent locator lists "${key}" twice`);
    entries.set(key, value);
  }
  const parentLinkage = entries.get(PARENT_LINKAGE_KEY);
  if (parentLinkage === undefined) throw file.corrupt('VHDX parent locator has no parent_linkage');
  if (!PARENT_PATH_KEYS.some((key) => entries.has(key)))
    throw file.corrupt(`VHDX parent locator names no parent path (${PARENT_PATH_KEYS.join(', ')})`);
  return { entries, parentLinkage, parentLinkage2: entries.get(PARENT_LINKAGE2_KEY) };
}

function isInside(folder: string, candidate: string): boolean {
  const rel = relative(folder, candidate);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

async function existing(path: string): Promise<string | undefined> {
  try {
    const real = await realpath(path);
    return (await stat(real)).isFile() ? real : undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return undefined;
    throw fromSystemError(error, 'cannot look for the VHDX parent', path);
  }
}

/** A Windows absolute path (drive letter, UNC or \\?\Volume{...}) rather than a relative one. */
function isWindowsAbsolute(value: string): boolean {
  return /^[A-Za-z]:[\\/]/.test(value) || value.startsWith('\\\\') || value.startsWith('/');
}

/** The parent's real path, by the locator's paths in order; SBM_PATH_OUTSIDE / SBM_NOT_FOUND otherwise. */
export async function resolveParentPath(childPath: string, locator: ParentLocator, allowOutside: boolean): Promise<string> {
  const folder = await realpath(dirname(childPath));
  const tried: string[] = [];
  for (const key of PARENT_PATH_KEYS) {
    const value = locator.entries.get(key);
    if (value === undefined) continue;
    tried.push(`${key}=${value}`);
    const posix = value.replace(/\\/g, '/');
    // A Windows absolute path names another machine's disk: only its file name can be looked for here.
    const candidate =
      isWindowsAbsolute(value) && key !== 'relative_path'
        ? resolve(folder, posix.slice(posix.lastIndexOf('/') + 1))
        : resolve(folder, posix);
    const found = await existing(candidate);
    if (found === undefined) continue;
    if (!allowOutside && (!isInside(folder, candidate) || !isInside(folder, found))) {
      throw new SbmError(
        'SBM_PATH_OUTSIDE',
        `${childPath}: VHDX parent "${value}" (${key}) lies outside the disk's folder (use --allow-outside to permit)`,
        {
          path: childPath,
          name: value,
        },
      );
    }
    return found;
  }
  throw new SbmError('SBM_NOT_FOUND', `${childPath}: VHDX parent not found (tried ${tried.join(', ')})`, { path: childPath, tried });
}
