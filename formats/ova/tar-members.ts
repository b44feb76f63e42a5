// Lists the members of an OVA (an uncompressed tar) by walking its headers in place: each header
// is decoded by node-tar's Header (ustar, GNU base-256 sizes, the ustar prefix field, checksum),
// pax extended headers ('x', 'g') by node-tar's Pax, GNU long names ('L') as NUL-terminated text.
// No member data is read here; members are byte ranges of the archive, read in place later.
//
//   [ header 512 ][ data, padded to 512 ] [ header ][ data ] ... [ 512 zeros ][ 512 zeros ]
//
// The archive is hostile: a bad checksum, a size running past the end of the file, a name with
// `..`, an absolute name, a link, a device, a folder, or a duplicate name refuses the package,
// before any member is trusted.

import type { FileHandle } from 'node:fs/promises';
import { Header, type HeaderData, Pax } from 'tar';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';
import { MAX_MEMBERS, MAX_META_BYTES, TAR_BLOCK } from './constants.js';

export interface TarMember {
  readonly name: string;
  /** Byte offset of the member's data in the archive. */
  readonly offset: number;
  readonly sizeBytes: number;
}

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

function padded(size: number): number {
  return Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}

/** A member name that stays inside the package: relative, no `..`, no empty segment games. */
export function isSafeMemberName(name: string): boolean {
  if (name === '' || name.startsWith('/') || name.includes('\\') || name.includes('\0')) return false;
  return name.split('/').every((segment) => segment !== '..');
}

export async function listTarMembers(handle: FileHandle, path: string, fileSize: number): Promise<TarMember[]> {
  const corrupt = (why: string): SbmError => new SbmError('SBM_CORRUPT', `${path}: ${why}`, { path });
  const read = async (length: number, position: number): Promise<Buffer> => {
    const out = Buffer.alloc(length);
    let got: number;
    try {
      got = await readFully(handle, out, position);
    } catch (error) {
      throw fromSystemError(error, 'cannot read', path);
    }
    if (got < length) throw corrupt(`tar data at offset ${position} runs past the end of the archive: truncated`);
    return out;
  };
  const members: TarMember[] = [];
  let extended: HeaderData | undefined;
  let global: HeaderData | undefined;
  let longName: string | undefined;
  for (let offset = 0; ; ) {
    if (offset + TAR_BLOCK > fileSize) {
      if (members.length > 0 && offset >= fileSize) return members; // no end blocks: GNU tar reads it too
      throw corrupt('the tar archive ends inside a header: truncated');
    }
    const block = await read(TAR_BLOCK, offset);
    const header = new Header(block, 0, extended, global);
    if (header.nullBlock) return members;
    if (!header.cksumValid) throw corrupt(`tar header at offset ${offset} has a bad checksum (not a tar archive, or damaged)`);
    const size = header.size ?? 0;
    const dataStart = offset + TAR_BLOCK;
    if (!Number.isSafeInteger(size) || size < 0 || dataStart + size > fileSize) {
      throw corrupt(`tar member at offset ${offset} claims ${size} bytes, past the end of the archive: truncated`);
    }
    const type = header.type;
    if (type === 'ExtendedHeader' || type === 'GlobalExtendedHeader' || type === 'NextFileHasLongPath') {
      if (size > MAX_META_BYTES) throw corrupt(`tar ${type} header of ${size} bytes`);
      const text = (await read(size, dataStart)).toString('utf8');
      if (type === 'NextFileHasLongPath') longName = text.replace(/\0.*$/s, '');
      else if (type === 'ExtendedHeader') extended = Pax.parse(text, extended, false);
      else global = Pax.parse(text, global, true);
    } else {
      const name = (longName ?? header.path ?? '').replace(/^(\.\/)+/, '');
      extended = undefined;
      longName = undefined;
      if (!isSafeMemberName(name)) {
        throw new SbmError('SBM_PATH_OUTSIDE', `${path}: tar member "${name}" lies outside the archive (absolute or with ..)`, {
          path,
          name,
        });
      }
      if (type === 'Directory') {
        offset = dataStart + padded(size);
        continue; // `tar -C dir .` adds ./ : harmless, and never a disk
      }
      if (!FILE_TYPES.has(type)) {
        throw new SbmError('SBM_UNSUPPORTED', `${path}: tar member "${name}" is a ${type}; an OVA holds regular files only`, {
          path,
          name,
        });
      }
      if (members.some((member) => member.name === name)) throw corrupt(`tar member "${name}" appears twice`);
      if (members.length >= MAX_MEMBERS) throw corrupt(`more than ${MAX_MEMBERS} tar members`);
      members.push({ name, offset: dataStart, sizeBytes: size });
    }
    offset = dataStart + padded(size);
  }
}
