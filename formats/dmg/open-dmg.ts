// Opens a UDIF (.dmg) image read-only: the koly trailer (last 512 bytes), then the XML plist it
// points to, then every blkx/mish table, all validated before any byte is served.

import { open } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import { readFully } from '../../lib/fs/read-fully.js';
import type { OpenImageOptions } from '../image-format.js';
import { checkMasterChecksum } from './dmg-checksums.js';
import { DmgImage } from './dmg-image.js';
import { blkxEntries, buildTables, parseKoly } from './dmg-tables.js';
import { KOLY } from './layouts.js';

/** Parses the XML plist text; the parser prints its own complaints, so non-plists are refused first. */
export async function parseDmgPlist(path: string, xml: Buffer): Promise<unknown> {
  const text = xml.toString('utf8');
  if (!/^\s*(?:\uFEFF)?<[?!]?(?:xml|DOCTYPE|plist)[\s\S]*<\/plist>\s*$/.test(text))
    throw new SbmError('SBM_CORRUPT', `${path}: UDIF XML plist is not a plist`, { path });
  const plist = await import('plist');
  // The XML parser (xmldom) prints malformed-XML complaints to the console before throwing; the
  // refusal below says it in one line instead. Parsing is synchronous, so nothing else logs meanwhile.
  const saved = { error: console.error, warn: console.warn, log: console.log };
  const quiet = (): void => {};
  Object.assign(console, { error: quiet, warn: quiet, log: quiet });
  try {
    return plist.parse(text);
  } catch (error) {
    throw new SbmError('SBM_CORRUPT', `${path}: UDIF XML plist does not parse (${String((error as Error).message).split('\n')[0]})`, {
      path,
    });
  } finally {
    Object.assign(console, saved);
  }
}

export async function openDmg(path: string, _options: OpenImageOptions = {}): Promise<DmgImage> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, 'cannot open UDIF image', path);
  }
  try {
    const { size } = await handle.stat();
    if (size < KOLY.sizeBytes) throw new SbmError('SBM_CORRUPT', `${path}: too short for a UDIF trailer`, { path });
    const trailer = Buffer.alloc(KOLY.sizeBytes);
    await readFully(handle, trailer, size - KOLY.sizeBytes);
    const koly = parseKoly(path, trailer, size);
    const xml = Buffer.alloc(koly.xmlLength);
    if ((await readFully(handle, xml, koly.xmlOffset)) < xml.length)
      throw new SbmError('SBM_CORRUPT', `${path}: UDIF XML plist ends early`, { path });
    const tables = buildTables(path, koly, blkxEntries(path, await parseDmgPlist(path, xml)));
    checkMasterChecksum(path, koly, tables.partitions);
    return new DmgImage(path, handle, tables);
  } catch (error) {
    await handle.close();
    throw error instanceof SbmError ? error : fromSystemError(error, 'cannot read UDIF image', path);
  }
}
