// Info.plist: rendered byte-for-byte as hdiutil writes it, parsed as macOS does (XML or binary,
// first 1024 bytes only, unknown keys ignored), and validated against Apple's limits.
//
// Template (TAB = 0x09, LF line ends, final LF); length = 480 + digits(band-size) + digits(size):
//   <?xml ...?> <!DOCTYPE ...> <plist version="1.0"> <dict>
//   \t<key>CFBundleInfoDictionaryVersion</key> \t<string>6.0</string>
//   \t<key>band-size</key> \t<integer>B</integer>
//   \t<key>bundle-backingstore-version</key> \t<integer>1</integer>
//   \t<key>diskimage-bundle-type</key> \t<string>com.apple.diskimage.sparsebundle</string>
//   \t<key>size</key> \t<integer>S</integer>
//   [\t<key>uuid</key> \t<string>U</string>]   version 2 only
//   </dict> </plist>
//
// Reading: bytes in exactly that layout (what sbm and hdiutil write) are parsed by matching the
// template and rendering it back: equal bytes mean equal values, with no XML parser. Anything
// else (other whitespace or key order, extra keys, binary plists) goes to the `plist` package,
// loaded on first need: it brings an XML DOM whose loading would outweigh everything else
// `sbm token` does.

import { SbmError } from '../errors.js';
import {
  BAND_SIZE_ALIGNMENT_BYTES,
  BUNDLE_TYPE,
  INFO_DICTIONARY_VERSION,
  INFO_PLIST_MAX_BYTES,
  MAX_BAND_SIZE_BYTES,
  MAX_SIZE_BYTES,
  MIN_BAND_SIZE_BYTES,
  SIZE_ALIGNMENT_BYTES,
} from './constants.js';

export interface BundleInfo {
  readonly bandSizeBytes: number;
  readonly sizeBytes: number;
  /** bundle-backingstore-version: sbm writes 1, reads 1 and 2 and keeps 2 on rewrite. */
  readonly version: number;
  /** Present in version 2 plists written by macOS. */
  readonly uuid?: string;
}

export function renderInfoPlist(info: BundleInfo): Buffer {
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    '\t<key>CFBundleInfoDictionaryVersion</key>',
    `\t<string>${INFO_DICTIONARY_VERSION}</string>`,
    '\t<key>band-size</key>',
    `\t<integer>${info.bandSizeBytes}</integer>`,
    '\t<key>bundle-backingstore-version</key>',
    `\t<integer>${info.version}</integer>`,
    '\t<key>diskimage-bundle-type</key>',
    `\t<string>${BUNDLE_TYPE}</string>`,
    '\t<key>size</key>',
    `\t<integer>${info.sizeBytes}</integer>`,
  ];
  if (info.uuid !== undefined) lines.push('\t<key>uuid</key>', `\t<string>${info.uuid}</string>`);
  lines.push('</dict>', '</plist>', '');
  return Buffer.from(lines.join('\n'), 'utf8');
}

type PlistModule = typeof import('plist');

let plistModule: PlistModule | undefined;
let plistLoading: Promise<PlistModule> | undefined;

/** Loads the general plist parser (XML and binary); parseInfoPlist uses it for non-canonical bytes. */
export async function loadInfoPlistParser(): Promise<void> {
  plistLoading ??= import('plist').then((loaded) => (plistModule = loaded));
  await plistLoading;
}

/** Parses Info.plist bytes the way DI2 does; loads the general parser when the bytes need it. */
export async function parseInfoPlistAsync(bytes: Buffer, name = 'Info.plist'): Promise<BundleInfo> {
  checkPlistLength(bytes, name);
  const canonical = parseCanonicalInfoPlist(bytes);
  if (canonical !== undefined) return canonical;
  await loadInfoPlistParser();
  return parseInfoPlist(bytes, name);
}

/**
 * Parses Info.plist bytes the way DI2 does; throws SBM_BAD_PLIST with the reason. Synchronous:
 * bytes that are not in the canonical layout need loadInfoPlistParser() to have run first
 * (parseInfoPlistAsync does that).
 */
export function parseInfoPlist(bytes: Buffer, name = 'Info.plist'): BundleInfo {
  checkPlistLength(bytes, name);
  const canonical = parseCanonicalInfoPlist(bytes);
  if (canonical !== undefined) return canonical;
  const plist = plistModule;
  if (plist === undefined) {
    throw new SbmError(
      'SBM_INTERNAL',
      `${name} is not in hdiutil's layout and the general plist parser is not loaded (use parseInfoPlistAsync)`,
    );
  }
  const binary = bytes.subarray(0, 8).toString('latin1') === 'bplist00';
  // The XML parser prints its own complaints to the console: reject obvious non-plists first.
  if (!binary && !/^\s*(?:\uFEFF)?<[?!]?(?:xml|DOCTYPE|plist)[\s\S]*<\/plist>\s*$/.test(bytes.toString('utf8'))) {
    throw new SbmError('SBM_BAD_PLIST', `${name} is neither an XML nor a binary plist`);
  }
  let root: unknown;
  try {
    root = binary ? plist.parseBinary(bytes) : plist.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new SbmError('SBM_BAD_PLIST', `${name} is not a valid plist: ${(error as Error).message}`, {}, { cause: error });
  }
  if (root === null || typeof root !== 'object' || Array.isArray(root) || root instanceof Date || root instanceof Uint8Array) {
    throw new SbmError('SBM_BAD_PLIST', `${name} root is not a dictionary`);
  }
  const dict = root as Record<string, unknown>;
  const bandSizeBytes = plistInteger(dict['band-size'], 'band-size', name);
  const sizeBytes = plistInteger(dict.size, 'size', name);
  const versionValue = dict['bundle-backingstore-version'];
  const version = versionValue === undefined ? 1 : plistInteger(versionValue, 'bundle-backingstore-version', name);
  const uuid = typeof dict.uuid === 'string' ? dict.uuid : undefined;
  const type = dict['diskimage-bundle-type'];
  if (type !== undefined && type !== BUNDLE_TYPE) {
    throw new SbmError('SBM_BAD_PLIST', `${name} has diskimage-bundle-type "${String(type)}", expected ${BUNDLE_TYPE}`);
  }
  return uuid === undefined ? { bandSizeBytes, sizeBytes, version } : { bandSizeBytes, sizeBytes, version, uuid };
}

// The values of the template's three integers and optional uuid; the whole match is then checked
// by rendering, so this pattern only has to find candidates. The uuid excludes '&' and '<' so no
// XML entity can hide in it (the general parser would decode one).
const CANONICAL_VALUES = new RegExp(
  String.raw`<key>band-size<\/key>\n\t<integer>([0-9]{1,16})<\/integer>\n` +
    String.raw`\t<key>bundle-backingstore-version<\/key>\n\t<integer>([0-9]{1,16})<\/integer>\n` +
    String.raw`[\s\S]*<key>size<\/key>\n\t<integer>([0-9]{1,16})<\/integer>\n` +
    String.raw`(?:\t<key>uuid<\/key>\n\t<string>([0-9A-Za-z-]{1,64})<\/string>\n)?<\/dict>`,
);

/**
 * The values of bytes that are exactly renderInfoPlist's output (hdiutil's layout), or undefined
 * for anything else. Exact: the values are rendered back and must reproduce every byte.
 */
export function parseCanonicalInfoPlist(bytes: Buffer): BundleInfo | undefined {
  if (bytes.length > INFO_PLIST_MAX_BYTES) return undefined;
  const match = CANONICAL_VALUES.exec(bytes.toString('latin1'));
  if (match === null) return undefined;
  const bandSizeBytes = Number(match[1]);
  const version = Number(match[2]);
  const sizeBytes = Number(match[3]);
  const uuid = match[4];
  if (![bandSizeBytes, version, sizeBytes].every(Number.isSafeInteger)) return undefined;
  const info: BundleInfo = uuid === undefined ? { bandSizeBytes, sizeBytes, version } : { bandSizeBytes, sizeBytes, version, uuid };
  return renderInfoPlist(info).equals(bytes) ? info : undefined;
}

function checkPlistLength(bytes: Buffer, name: string): void {
  if (bytes.length > INFO_PLIST_MAX_BYTES) {
    throw new SbmError('SBM_BAD_PLIST', `${name} is ${bytes.length} bytes; macOS reads only the first ${INFO_PLIST_MAX_BYTES}`);
  }
}

function plistInteger(value: unknown, key: string, name: string): number {
  if (typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= 0n) return Number(value);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new SbmError('SBM_BAD_PLIST', `${name} has no valid integer "${key}"`, { key });
  }
  return value;
}

/** Checks band size and disk size against Apple's limits (and sbm's 2^52 cap). */
export function validateGeometry(bandSizeBytes: number, sizeBytes: number): void {
  if (
    !Number.isSafeInteger(bandSizeBytes) ||
    bandSizeBytes % BAND_SIZE_ALIGNMENT_BYTES !== 0 ||
    bandSizeBytes < MIN_BAND_SIZE_BYTES ||
    bandSizeBytes > MAX_BAND_SIZE_BYTES
  ) {
    throw new SbmError('SBM_BAD_BAND_SIZE', `band size ${bandSizeBytes} must be a multiple of 4096 between 1 MiB and 8 GiB`, {
      bandSizeBytes,
    });
  }
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % SIZE_ALIGNMENT_BYTES !== 0 || sizeBytes > MAX_SIZE_BYTES) {
    throw new SbmError('SBM_BAD_SIZE', `disk size ${sizeBytes} must be a positive multiple of 512 bytes no larger than 4 PiB`, {
      sizeBytes,
    });
  }
}
