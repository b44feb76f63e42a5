// Resolves a file name from DiskDescriptor.xml or config.pvs against the folder that holds it.
// Relative names must stay inside the folder (`..` and symlinks leading out are refused), an
// absolute name inside the folder is fine, and an absolute name that does not exist (a bundle
// moved from another Mac keeps its old paths) is looked for by its basename in the folder.
// Anything else outside needs --allow-outside.

import { realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import { SbmError, fromSystemError } from '../../lib/errors.js';

function isInside(folder: string, candidate: string): boolean {
  const rel = relative(folder, candidate);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** The real path of an existing entry, or undefined when there is none. */
async function existing(path: string): Promise<string | undefined> {
  try {
    return await realpath(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromSystemError(error, 'cannot open', path);
  }
}

export interface NamedFile {
  /** The folder names are relative to. */
  readonly folder: string;
  /** The file that names it (for messages). */
  readonly namedBy: string;
  /** What it is ("image", "disk"). */
  readonly what: string;
  readonly allowOutside: boolean;
  /** A folder (a .hdd disk named by config.pvs) rather than a file. */
  readonly directory?: boolean;
}

export async function resolveInside(name: string, context: NamedFile): Promise<string> {
  const { namedBy, what } = context;
  const folder = await realpath(context.folder).catch((error: unknown) => {
    throw fromSystemError(error, 'cannot open', context.folder);
  });
  const outside = (): SbmError =>
    new SbmError('SBM_PATH_OUTSIDE', `${namedBy}: ${what} "${name}" lies outside ${folder} (use --allow-outside to permit)`, {
      path: namedBy,
      name,
    });
  const missing = (): SbmError => new SbmError('SBM_NOT_FOUND', `${namedBy}: ${what} "${name}" not found`, { path: namedBy, name });
  let found: string | undefined;
  if (isAbsolute(name)) {
    found = await existing(name);
    if (found === undefined || !isInside(folder, found)) {
      const local = await existing(resolve(folder, basename(name)));
      if (local !== undefined && isInside(folder, local)) found = local;
      else if (found === undefined) throw missing();
      else if (!context.allowOutside) throw outside();
    }
  } else {
    const joined = resolve(folder, name);
    if (!context.allowOutside && !isInside(folder, joined)) throw outside();
    found = await existing(joined);
    if (found === undefined) throw missing();
    if (!context.allowOutside && !isInside(folder, found)) throw outside();
  }
  const info = await stat(found);
  if (context.directory === true ? !info.isDirectory() : !info.isFile()) {
    throw new SbmError('SBM_UNSUPPORTED', `${namedBy}: ${what} "${name}" is not a ${context.directory ? 'folder' : 'regular file'}`, {
      path: namedBy,
      name,
    });
  }
  return found;
}
