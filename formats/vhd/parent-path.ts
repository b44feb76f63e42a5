// Where a differencing VHD's parent is. The dynamic header names it up to three ways, tried in
// this order, each against the child's own folder:
//
//   W2ru locator   relative Windows path (.\parent.vhd), UTF-16LE
//   W2ku locator   absolute Windows path (C:\VMs\parent.vhd), UTF-16LE: a Windows path cannot be
//                  opened here, so its file name is looked for beside the child; a POSIX absolute
//                  path is used as it is
//   parent name    the header's parent unicode name, UTF-16BE (usually the bare file name)
//
// The first that names an existing file wins. A name that leads outside the child's folder
// (`..\`, an absolute path elsewhere, a symlink out) is refused with SBM_PATH_OUTSIDE unless
// the caller allows outside paths, as for VMDK and qcow2 parents.

import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { PARENT_LOCATOR_COUNT, PARENT_LOCATOR_MAX_BYTES, PLATFORM_CODE_NONE, PLATFORM_CODE_W2KU, PLATFORM_CODE_W2RU } from './constants.js';
import type { VhdDynamicHeaderValues } from './dynamic-header.js';
import { VHD_PARENT_LOCATOR } from './layouts.js';
import type { VhdFile } from './vhd-file.js';

export interface ParentName {
  readonly source: 'W2ru' | 'W2ku' | 'parent name';
  readonly name: string;
}

function cleanText(text: string): string {
  const end = text.indexOf('\0');
  return (end === -1 ? text : text.slice(0, end)).trim();
}

/** The parent's names from the locators and the header, in the order they are tried. */
export async function parentNames(file: VhdFile, header: VhdDynamicHeaderValues): Promise<ParentName[]> {
  const relativeNames: ParentName[] = [];
  const absoluteNames: ParentName[] = [];
  for (let index = 0; index < PARENT_LOCATOR_COUNT; index++) {
    const entry = VHD_PARENT_LOCATOR.decode(header.parentLocators, index * VHD_PARENT_LOCATOR.sizeBytes, file.path);
    if (entry.platformCode === PLATFORM_CODE_NONE) continue;
    const list =
      entry.platformCode === PLATFORM_CODE_W2RU ? relativeNames : entry.platformCode === PLATFORM_CODE_W2KU ? absoluteNames : undefined;
    if (list === undefined || entry.platformDataLength === 0) continue; // Mac aliases and deprecated forms: not paths sbm can use
    if (entry.platformDataLength > PARENT_LOCATOR_MAX_BYTES || entry.platformDataLength % 2 !== 0) {
      throw file.corrupt(`VHD parent locator ${index} holds ${entry.platformDataLength} bytes, not a UTF-16 path`);
    }
    if (entry.platformDataOffset > BigInt(file.sizeBytes))
      throw file.corrupt(`VHD parent locator ${index} data at ${entry.platformDataOffset} lies past the end of the file`);
    const data = await file.read(entry.platformDataLength, Number(entry.platformDataOffset), `VHD parent locator ${index}`);
    const name = cleanText(data.toString('utf16le'));
    if (name !== '') list.push({ source: list === relativeNames ? 'W2ru' : 'W2ku', name });
  }
  const unicode = Buffer.from(header.parentUnicodeName);
  const headerName = cleanText(unicode.swap16().toString('utf16le'));
  return [...relativeNames, ...absoluteNames, ...(headerName === '' ? [] : [{ source: 'parent name' as const, name: headerName }])];
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
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG') return undefined;
    throw fromSystemError(error, 'cannot look for the VHD parent', path);
  }
}

function isWindowsAbsolute(name: string): boolean {
  return /^[A-Za-z]:[\\/]/.test(name) || name.startsWith('\\\\');
}

/** Resolves the parent of `file` to a real path, or throws SBM_PATH_OUTSIDE / SBM_NOT_FOUND. */
export async function resolveParentPath(file: VhdFile, names: readonly ParentName[], allowOutside: boolean): Promise<string> {
  if (names.length === 0) throw file.corrupt('differencing VHD names no parent (no W2ru/W2ku locator, no parent name)');
  const folder = await realpath(dirname(file.path));
  let outside: ParentName | undefined;
  for (const candidate of names) {
    if (candidate.name.includes('\0')) continue;
    const windowsAbsolute = isWindowsAbsolute(candidate.name);
    const posixName = candidate.name.replace(/\\/g, '/');
    const joined = windowsAbsolute ? resolve(folder, basename(posixName)) : resolve(folder, posixName);
    const found = await existing(joined);
    if (found === undefined) continue;
    if (!allowOutside && !isInside(folder, found)) {
      outside ??= candidate;
      continue;
    }
    return found;
  }
  if (outside !== undefined) {
    throw new SbmError(
      'SBM_PATH_OUTSIDE',
      `${file.path}: parent "${outside.name}" (${outside.source}) lies outside the image's folder (use --allow-outside to permit)`,
      {
        path: file.path,
        name: outside.name,
      },
    );
  }
  const tried = names.map((candidate) => `${candidate.source} "${candidate.name}"`).join(', ');
  throw new SbmError('SBM_NOT_FOUND', `${file.path}: parent VHD not found (tried ${tried})`, { path: file.path });
}
