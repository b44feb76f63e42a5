// An OVF package as a set of named files, each a byte range of a real file: the members of an
// OVA's tar (read in place, never extracted), or the files of an unpacked package folder (the
// folder of an .ovf). Every name is checked to stay inside the package.

import { createReadStream } from 'node:fs';
import { open, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';
import { digester, type DigestAlgorithm } from './manifest.js';
import { listTarMembers } from './tar-members.js';

/** `sizeBytes` bytes of the file at `path` from `offset`. */
export interface PackageFile {
  readonly name: string;
  readonly path: string;
  readonly offset: number;
  readonly sizeBytes: number;
}

export interface OvfPackage {
  /** What the user named: the .ova, the folder or the .ovf. */
  readonly path: string;
  readonly kind: 'ova' | 'folder';
  readonly ovf: PackageFile;
  /** The file called `name` in the package, or undefined. */
  find(name: string): Promise<PackageFile | undefined>;
  /** Names of every file in the package (for the manifest lookup). */
  names(): Promise<string[]>;
}

export async function openOvaPackage(path: string): Promise<OvfPackage> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, 'cannot open', path);
  }
  let members;
  try {
    members = await listTarMembers(handle, path, (await handle.stat()).size);
  } finally {
    await handle.close();
  }
  const first = members[0];
  if (first === undefined || !/\.ovf$/i.test(first.name)) {
    throw new SbmError(
      'SBM_CORRUPT',
      `${path}: the first file of an OVA must be its .ovf descriptor (found "${first?.name ?? 'nothing'}")`,
      {
        path,
      },
    );
  }
  const files = new Map(
    members.map((member) => [member.name, { name: member.name, path, offset: member.offset, sizeBytes: member.sizeBytes }]),
  );
  return {
    path,
    kind: 'ova',
    ovf: files.get(first.name) as PackageFile,
    find: async (name) => files.get(name),
    names: async () => [...files.keys()],
  };
}

function isInside(folder: string, candidate: string): boolean {
  const rel = relative(folder, candidate);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** A folder holding one .ovf (or `ovfPath`, an .ovf file named directly) and its files. */
export async function openFolderPackage(path: string, ovfPath?: string): Promise<OvfPackage> {
  const folder = await realpath(ovfPath === undefined ? path : dirname(ovfPath)).catch((error: unknown) => {
    throw fromSystemError(error, 'cannot open', path);
  });
  let ovfName = ovfPath === undefined ? undefined : basename(ovfPath);
  if (ovfName === undefined) {
    const found = (await readdir(folder)).filter((name) => /\.ovf$/i.test(name));
    if (found.length !== 1) {
      throw new SbmError('SBM_UNSUPPORTED', `${path}: an OVF folder must hold exactly one .ovf (found ${found.length})`, { path });
    }
    ovfName = found[0] as string;
  }
  const find = async (name: string): Promise<PackageFile | undefined> => {
    const real = await realpath(join(folder, name)).catch(() => undefined);
    if (real === undefined) return undefined;
    if (!isInside(folder, real)) {
      throw new SbmError('SBM_PATH_OUTSIDE', `${path}: "${name}" leads outside the package folder`, { path, name });
    }
    const info = await stat(real);
    return info.isFile() ? { name, path: real, offset: 0, sizeBytes: info.size } : undefined;
  };
  const ovf = await find(ovfName);
  if (ovf === undefined) throw new SbmError('SBM_NOT_FOUND', `${path}: ${ovfName} not found`, { path });
  return { path, kind: 'folder', ovf, find, names: async () => readdir(folder) };
}

/** Reads a small package file whole (the .ovf, the .mf), refusing one over `maxBytes` unread. */
export async function readPackageFile(file: PackageFile, maxBytes: number, what: string): Promise<Buffer> {
  if (file.sizeBytes > maxBytes) {
    throw new SbmError(
      'SBM_UNSUPPORTED',
      `${file.path}: ${what} ${file.name} is ${file.sizeBytes} bytes, more than the ${maxBytes} sbm reads`,
      {
        path: file.path,
      },
    );
  }
  const handle = await open(file.path, 'r').catch((error: unknown) => {
    throw fromSystemError(error, `cannot read ${what}`, file.path);
  });
  try {
    const out = Buffer.alloc(file.sizeBytes);
    if ((await readFully(handle, out, file.offset)) < out.length) {
      throw new SbmError('SBM_CORRUPT', `${file.path}: ${file.name} is truncated`, { path: file.path });
    }
    return out;
  } finally {
    await handle.close();
  }
}

/** The digest of the files' bytes, concatenated in order, streamed (never held whole). */
export async function digestOf(files: readonly PackageFile[], algorithm: DigestAlgorithm): Promise<string> {
  const hash = digester(algorithm);
  for (const file of files) {
    if (file.sizeBytes === 0) continue;
    const stream = createReadStream(file.path, { start: file.offset, end: file.offset + file.sizeBytes - 1, highWaterMark: 1024 * 1024 });
    let seen = 0;
    try {
      for await (const chunk of stream) {
        hash.update(chunk as Buffer);
        seen += (chunk as Buffer).length;
      }
    } catch (error) {
      throw fromSystemError(error, 'cannot read', file.path);
    }
    if (seen !== file.sizeBytes) throw new SbmError('SBM_CORRUPT', `${file.path}: ${file.name} is truncated`, { path: file.path });
  }
  return hash.hex();
}
