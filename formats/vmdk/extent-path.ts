// Resolves the file names a descriptor gives (extents, parentFileNameHint) against the
// descriptor's own folder, refusing anything that escapes it (`../`, absolute paths, symlinks
// pointing out) unless the caller opted in with allowOutside.

import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { SbmError, fromSystemError } from '../../lib/errors.js';

/** Absolute in any convention a descriptor may carry: POSIX, Windows drive, UNC, URL-like. */
export function isForeignAbsolute(name: string): boolean {
  return isAbsolute(name) || /^[A-Za-z]:[\\/]/.test(name) || name.startsWith('\\\\') || /^[a-z][a-z0-9+.-]*:\/\//i.test(name);
}

function isInside(folder: string, candidate: string): boolean {
  const rel = relative(folder, candidate);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

async function existingFile(path: string): Promise<string | undefined> {
  try {
    const real = await realpath(path);
    const info = await stat(real);
    if (!info.isFile()) {
      throw new SbmError('SBM_UNSUPPORTED', `${path} is not a regular file (device-backed VMDK extents are not read)`, { path });
    }
    return real;
  } catch (error) {
    if (error instanceof SbmError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromSystemError(error, 'cannot open VMDK file', path);
  }
}

/**
 * Resolves `name` (as written in `descriptorPath`) to a real path inside the descriptor's folder.
 * `what` says what is being resolved, for messages ("extent", "parent").
 */
export async function resolveNamedFile(descriptorPath: string, name: string, what: string, allowOutside: boolean): Promise<string> {
  const folder = await realpath(dirname(descriptorPath));
  if (name.startsWith('/dev/') || name.startsWith('\\\\.\\')) {
    throw new SbmError('SBM_UNSUPPORTED', `${descriptorPath}: ${what} "${name}" is a device; device-backed VMDKs are not read`, {
      path: descriptorPath,
    });
  }
  const outside = (): SbmError =>
    new SbmError(
      'SBM_PATH_OUTSIDE',
      `${descriptorPath}: ${what} "${name}" lies outside the descriptor's folder (use --allow-outside to permit)`,
      {
        path: descriptorPath,
        name,
      },
    );
  if (isForeignAbsolute(name)) {
    // qemu writes absolute hints; ESXi and Windows hosts write foreign ones (/vmfs/volumes/...,
    // C:\...). An absolute path inside the folder is fine; else try the basename beside the child.
    const direct = isAbsolute(name) ? await existingFile(name) : undefined;
    if (direct !== undefined && isInside(folder, direct)) return direct;
    if (what === 'parent') {
      const local = await existingFile(resolve(folder, basename(name.replace(/\\/g, '/'))));
      if (local !== undefined) return local;
    }
    if (direct === undefined)
      throw new SbmError('SBM_NOT_FOUND', `${descriptorPath}: ${what} "${name}" not found`, { path: descriptorPath, name });
    if (!allowOutside) throw outside();
    return direct;
  }
  const joined = resolve(folder, name);
  if (!allowOutside && !isInside(folder, joined)) throw outside();
  const found = await existingFile(joined);
  if (found === undefined)
    throw new SbmError('SBM_NOT_FOUND', `${descriptorPath}: ${what} "${name}" not found`, { path: descriptorPath, name });
  if (!allowOutside && !isInside(folder, found)) throw outside();
  return found;
}
