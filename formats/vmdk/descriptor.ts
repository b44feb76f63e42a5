// The VMDK text descriptor: a standalone file or the area embedded in a sparse extent.
//
//   # Disk DescriptorFile
//   version=1
//   CID=2b9e41c0
//   parentCID=ffffffff
//   createType="twoGbMaxExtentSparse"
//   parentFileNameHint="base.vmdk"          (delta links only)
//   RW 4192256 SPARSE "vm-s001.vmdk"        ACCESS SECTORS TYPE ["NAME" [OFFSET]]
//   RW 204800 FLAT "vm-f001.vmdk" 0
//   ddb.adapterType = "lsilogic"
//
// Keys are case-insensitive (VDF5), values quoted or bare, lines end in LF or CRLF, text stops at
// the first NUL (embedded areas are zero-padded), and `encoding=` names the charset.

import { TextDecoder } from 'node:util';
import { SbmError } from '../../lib/errors.js';
import { NO_PARENT_CID } from './constants.js';

export type ExtentAccess = 'RW' | 'RDONLY' | 'NOACCESS';

export interface DescriptorExtent {
  readonly access: ExtentAccess;
  readonly sectors: number;
  /** Upper-case extent type: FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, VMFSRDM, VMFSRAW, SESPARSE. */
  readonly type: string;
  readonly fileName?: string;
  /** FLAT only: start of the data in the file, in sectors. */
  readonly offsetSectors: number;
}

export interface Descriptor {
  readonly version: number;
  readonly cid: number | undefined;
  readonly parentCid: number;
  /** As written (case preserved); compare with createTypeKey. */
  readonly createType: string;
  readonly parentFileNameHint: string | undefined;
  readonly extents: readonly DescriptorExtent[];
  /** Every `ddb.*` key, lower-cased, unquoted. */
  readonly ddb: Readonly<Record<string, string>>;
}

const MAX_EXTENTS = 4096;
const ACCESS_MODES = new Set(['RW', 'RDONLY', 'NOACCESS']);

/** True if `head` (the first bytes of a file) looks like a text descriptor. */
export function looksLikeDescriptor(head: Uint8Array): boolean {
  const nul = head.indexOf(0);
  const bom = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  const text = Buffer.from(head.subarray(bom, Math.min(nul < 0 ? head.length : nul, 4096))).toString('latin1');
  if (/^\s*#\s*Disk\s*Descriptor\s*File/i.test(text)) return true;
  // Otherwise: only comments, blank lines and key=value lines before a createType= line.
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (/^createType\s*=/i.test(line)) return true;
    if (!/^[A-Za-z][\w.]*\s*=/.test(line)) return false;
  }
  return false;
}

/** Decodes descriptor bytes with the charset named by `encoding=` (UTF-8 by default). */
export function decodeDescriptorText(bytes: Uint8Array, path: string): string {
  const nul = bytes.indexOf(0);
  const body = bytes.subarray(0, nul < 0 ? bytes.length : nul);
  const latin = Buffer.from(body).toString('latin1');
  const match = /^\s*encoding\s*=\s*"?([^"\r\n]*)"?\s*$/im.exec(latin);
  const label = (match?.[1] ?? 'UTF-8').trim() || 'UTF-8';
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(label, { fatal: true });
  } catch {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: descriptor encoding "${label}" is not supported`, { path, encoding: label });
  }
  try {
    return decoder.decode(body);
  } catch {
    throw new SbmError('SBM_CORRUPT', `${path}: descriptor is not valid ${label} text`, { path, encoding: label });
  }
}

/** Splits an extent line into tokens; "quoted names" with spaces are one token. */
function tokenize(line: string): string[] {
  const tokens: string[] = [];
  const pattern = /"([^"]*)"|(\S+)/g;
  for (let match = pattern.exec(line); match !== null; match = pattern.exec(line)) tokens.push(match[1] ?? match[2] ?? '');
  return tokens;
}

function parseExtentLine(line: string, path: string): DescriptorExtent {
  const tokens = tokenize(line);
  const [access = '', sectorsText = '', type = '', fileName, offsetText] = tokens;
  const bad = (why: string): SbmError =>
    new SbmError('SBM_CORRUPT', `${path}: bad extent line "${line.slice(0, 80)}": ${why}`, { path, line });
  if (!/^\d{1,16}$/.test(sectorsText)) throw bad('sector count is not a number');
  const sectors = Number(sectorsText);
  if (!Number.isSafeInteger(sectors * 512)) throw bad('sector count too large');
  if (offsetText !== undefined && !/^\d{1,16}$/.test(offsetText)) throw bad('offset is not a number');
  const offsetSectors = offsetText === undefined ? 0 : Number(offsetText);
  if (!Number.isSafeInteger(offsetSectors * 512)) throw bad('offset too large');
  return { access: access.toUpperCase() as ExtentAccess, sectors, type: type.toUpperCase(), fileName, offsetSectors };
}

function unquote(value: string): string {
  const trimmed = value.trim();
  return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1) : trimmed;
}

function parseCid(value: string | undefined, key: string, path: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9a-f]{1,8}$/i.test(value))
    throw new SbmError('SBM_CORRUPT', `${path}: ${key} "${value.slice(0, 20)}" is not 8 hex digits`, { path });
  return Number.parseInt(value, 16);
}

/** Parses descriptor text. `path` names the file in errors. */
export function parseDescriptor(text: string, path: string): Descriptor {
  const keys = new Map<string, string>();
  const ddb: Record<string, string> = {};
  const extents: DescriptorExtent[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const first = line.split(/\s/, 1)[0]?.toUpperCase() ?? '';
    if (ACCESS_MODES.has(first)) {
      if (extents.length >= MAX_EXTENTS) throw new SbmError('SBM_UNSUPPORTED', `${path}: more than ${MAX_EXTENTS} extents`, { path });
      extents.push(parseExtentLine(line, path));
      continue;
    }
    const equals = line.indexOf('=');
    if (equals <= 0) continue; // unknown line: keep going, as VMware and libvmdk do
    const key = line.slice(0, equals).trim().toLowerCase();
    const value = unquote(line.slice(equals + 1));
    if (key.startsWith('ddb.')) ddb[key.slice(4)] = value;
    else keys.set(key, value);
  }
  const createType = keys.get('createtype');
  if (createType === undefined || createType === '') {
    throw new SbmError('SBM_CORRUPT', `${path}: descriptor has no createType`, { path });
  }
  const versionText = keys.get('version') ?? '1';
  const version = /^\d{1,3}$/.test(versionText) ? Number(versionText) : Number.NaN;
  if (!(version >= 1 && version <= 3)) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: descriptor version "${versionText.slice(0, 20)}" is not 1, 2 or 3`, { path });
  }
  return {
    version,
    cid: parseCid(keys.get('cid'), 'CID', path),
    parentCid: parseCid(keys.get('parentcid'), 'parentCID', path) ?? NO_PARENT_CID,
    createType,
    parentFileNameHint: keys.get('parentfilenamehint') || undefined,
    extents,
    ddb,
  };
}

/** Writes a descriptor as VMware and qemu do (UTF-8, LF). */
export function formatDescriptor(descriptor: Descriptor): string {
  const hex = (value: number): string => value.toString(16).padStart(8, '0');
  const lines = [
    '# Disk DescriptorFile',
    `version=${descriptor.version}`,
    'encoding="UTF-8"',
    `CID=${hex(descriptor.cid ?? 0)}`,
    `parentCID=${hex(descriptor.parentCid)}`,
    `createType="${descriptor.createType}"`,
  ];
  if (descriptor.parentFileNameHint !== undefined) lines.push(`parentFileNameHint="${descriptor.parentFileNameHint}"`);
  lines.push('', '# Extent description');
  for (const extent of descriptor.extents) {
    const name = extent.fileName === undefined ? '' : ` "${extent.fileName}"`;
    const offset = extent.type === 'FLAT' ? ` ${extent.offsetSectors}` : '';
    lines.push(`${extent.access} ${extent.sectors} ${extent.type}${name}${offset}`);
  }
  lines.push('', '# The Disk Data Base', '#DDB', '');
  for (const [key, value] of Object.entries(descriptor.ddb)) lines.push(`ddb.${key} = "${value}"`);
  return `${lines.join('\n')}\n`;
}
