// Finds the text descriptor that names a given extent file, so that naming any extent of a
// multi-extent disk opens the whole disk. Synchronous because format detection is; bounded to a
// few thousand small files of one folder.

import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MAX_DESCRIPTOR_FILE_BYTES } from './constants.js';
import { decodeDescriptorText, looksLikeDescriptor, parseDescriptor } from './descriptor.js';

const MAX_ENTRIES = 4096;

function readHead(path: string, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const got = readSync(fd, out, done, length - done, done);
      if (got === 0) break;
      done += got;
    }
    return out.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

/** Path of a descriptor beside `extentPath` that lists it as an extent, or undefined. */
export function findDescriptorNaming(extentPath: string): string | undefined {
  const folder = dirname(extentPath);
  const target = basename(extentPath);
  let names: string[];
  try {
    names = readdirSync(folder).slice(0, MAX_ENTRIES);
  } catch {
    return undefined; // unreadable folder: no descriptor can be found, the caller reports that
  }
  for (const name of names.sort()) {
    if (name === target || !/\.vmdk$/i.test(name)) continue;
    const candidate = join(folder, name);
    try {
      const info = statSync(candidate);
      if (!info.isFile() || info.size > MAX_DESCRIPTOR_FILE_BYTES) continue;
      const head = readHead(candidate, info.size);
      if (!looksLikeDescriptor(head)) continue;
      const descriptor = parseDescriptor(decodeDescriptorText(head, candidate), candidate);
      if (descriptor.extents.some((extent) => extent.fileName !== undefined && basename(extent.fileName.replace(/\\/g, '/')) === target)) {
        return candidate;
      }
    } catch {}
  }
  return undefined;
}
