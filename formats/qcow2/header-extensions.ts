// Header extensions: after the header (at header_length; 72 for version 2) up to the backing
// file name, or the end of cluster 0 without one. Each entry is `type u32, length u32, data`,
// padded to a multiple of 8; type 0 ends the list. Unknown types are skipped, a known type may
// appear once, and an entry running past the area is damage (qemu: "Header extension too large").

import { defineLayout } from '../../lib/binary-layout.js';
import { SbmError } from '../../lib/errors.js';
import {
  MAX_BACKING_FORMAT_NAME_BYTES,
  QCOW2_EXT_MAGIC_BACKING_FORMAT,
  QCOW2_EXT_MAGIC_BITMAPS,
  QCOW2_EXT_MAGIC_CRYPTO_HEADER,
  QCOW2_EXT_MAGIC_DATA_FILE,
  QCOW2_EXT_MAGIC_END,
  QCOW2_EXT_MAGIC_FEATURE_TABLE,
} from './constants.js';

const EXTENSION_HEADER = defineLayout('qcow2 header extension', 8, 'be', [
  { name: 'type', offset: 0, type: 'u32' },
  { name: 'length', offset: 4, type: 'u32' },
] as const);

const FEATURE_NAME_ENTRY = defineLayout('qcow2 feature name', 48, 'be', [
  { name: 'type', offset: 0, type: 'u8' },
  { name: 'bit', offset: 1, type: 'u8' },
  { name: 'name', offset: 2, type: 'bytes', size: 46 },
] as const);

export const BITMAPS_EXTENSION = defineLayout('qcow2 bitmaps extension', 24, 'be', [
  { name: 'nbBitmaps', offset: 0, type: 'u32' },
  { name: 'reserved', offset: 4, type: 'u32' },
  { name: 'directorySize', offset: 8, type: 'u64' },
  { name: 'directoryOffset', offset: 16, type: 'u64' },
] as const);

export interface FeatureName {
  /** 0 incompatible, 1 compatible, 2 autoclear. */
  readonly type: number;
  readonly bit: number;
  readonly name: string;
}

export interface HeaderExtensions {
  readonly backingFormat: string | undefined;
  readonly featureTable: readonly FeatureName[];
  readonly bitmaps: { readonly nbBitmaps: number; readonly directorySize: bigint; readonly directoryOffset: bigint } | undefined;
  readonly dataFile: string | undefined;
  readonly hasCryptoHeader: boolean;
}

export function readHeaderExtensions(head: Buffer, start: number, end: number, clusterSize: number, path: string): HeaderExtensions {
  const corrupt = (why: string): SbmError => new SbmError('SBM_CORRUPT', `${path}: ${why}`, { path });
  const areaEnd = Math.min(end, clusterSize, head.length);
  if (end > clusterSize) throw corrupt(`backing file name offset ${end} lies outside the first cluster`);
  if (end < start) throw corrupt(`backing file name offset ${end} lies inside the header`);
  const seen = new Set<number>();
  const found: { -readonly [K in keyof HeaderExtensions]: HeaderExtensions[K] } = {
    backingFormat: undefined,
    featureTable: [],
    bitmaps: undefined,
    dataFile: undefined,
    hasCryptoHeader: false,
  };
  let position = start;
  while (position + EXTENSION_HEADER.sizeBytes <= areaEnd) {
    const { type, length } = EXTENSION_HEADER.decode(head, position, path);
    if (type === QCOW2_EXT_MAGIC_END) break;
    const dataStart = position + EXTENSION_HEADER.sizeBytes;
    if (length > areaEnd - dataStart)
      throw corrupt(`header extension 0x${type.toString(16)} of ${length} bytes runs past the extension area`);
    const data = head.subarray(dataStart, dataStart + length);
    if (
      type === QCOW2_EXT_MAGIC_BACKING_FORMAT ||
      type === QCOW2_EXT_MAGIC_FEATURE_TABLE ||
      type === QCOW2_EXT_MAGIC_BITMAPS ||
      type === QCOW2_EXT_MAGIC_DATA_FILE ||
      type === QCOW2_EXT_MAGIC_CRYPTO_HEADER
    ) {
      if (seen.has(type)) throw corrupt(`header extension 0x${type.toString(16)} appears twice`);
      seen.add(type);
    }
    switch (type) {
      case QCOW2_EXT_MAGIC_BACKING_FORMAT:
        if (length > MAX_BACKING_FORMAT_NAME_BYTES) throw corrupt(`backing format name of ${length} bytes is too long`);
        found.backingFormat = data.toString('latin1');
        break;
      case QCOW2_EXT_MAGIC_FEATURE_TABLE:
        found.featureTable = decodeFeatureTable(data);
        break;
      case QCOW2_EXT_MAGIC_BITMAPS: {
        if (length < BITMAPS_EXTENSION.sizeBytes) throw corrupt(`bitmaps extension of ${length} bytes is too short`);
        const { nbBitmaps, directorySize, directoryOffset } = BITMAPS_EXTENSION.decode(data, 0, path);
        found.bitmaps = { nbBitmaps, directorySize, directoryOffset };
        break;
      }
      case QCOW2_EXT_MAGIC_DATA_FILE:
        found.dataFile = data.toString('utf8').replace(/\0+$/, '');
        break;
      case QCOW2_EXT_MAGIC_CRYPTO_HEADER:
        found.hasCryptoHeader = true;
        break;
      default:
        break;
    }
    position = dataStart + Math.ceil(length / 8) * 8;
  }
  return found;
}

function decodeFeatureTable(data: Buffer): FeatureName[] {
  const names: FeatureName[] = [];
  for (let at = 0; at + FEATURE_NAME_ENTRY.sizeBytes <= data.length; at += FEATURE_NAME_ENTRY.sizeBytes) {
    const entry = FEATURE_NAME_ENTRY.decode(data, at);
    const text = entry.name.toString('latin1');
    const end = text.indexOf('\0');
    names.push({ type: entry.type, bit: entry.bit, name: (end < 0 ? text : text.slice(0, end)).replace(/[^\x20-\x7e]/g, '?') });
  }
  return names;
}

/** The feature table's names for the set bits of `bits` (of the given feature type), else "bit N". */
export function featureNames(table: readonly FeatureName[], type: number, bits: bigint): string[] {
  const out: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((bits & (1n << BigInt(bit))) === 0n) continue;
    const named = table.find((entry) => entry.type === type && entry.bit === bit);
    out.push(named === undefined ? `bit ${bit}` : `${named.name} (bit ${bit})`);
  }
  return out;
}
