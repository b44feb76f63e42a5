// The first MiB of a VHDX: file identifier, the two headers and the two region tables.
//
// Header choice ([MS-VHDX] 2.2.2): a header is valid when its signature is "head", its CRC-32C
// (over 4 KiB, checksum field zeroed) matches and its version is 1; the valid one with the larger
// sequence number is current. Equal numbers are accepted only for identical headers (Disk2vhd
// writes such pairs). A current header with a non-zero LogGuid has a log to replay first: the
// caller replays it in memory (log-replay.ts) before reading anything else.
//
// Region tables: CRC-32C over 64 KiB; table 1 is used, table 2 when table 1 is damaged.

import { crc32c } from '../../lib/checksums.js';
import type { WarningSink } from '../../lib/warnings.js';
import {
  BAT_GUID,
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  HEADER_SECTION_SIZE,
  HEADER_SIZE,
  METADATA_GUID,
  MiB,
  REGION_REQUIRED,
  REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET,
  REGION_TABLE_MAX_ENTRIES,
  REGION_TABLE_SIZE,
  VHDX_HEADER_SIGNATURE,
  VHDX_HEADER_VERSION,
  VHDX_LOG_VERSION,
  VHDX_REGION_TABLE_SIGNATURE,
} from './constants.js';
import { guidToBytes, guidToText } from './guid.js';
import { FILE_IDENTIFIER, REGION_TABLE_ENTRY, REGION_TABLE_HEADER, VHDX_HEADER } from './layouts.js';
import type { VhdxFile } from './vhdx-file.js';

export type VhdxHeader = ReturnType<typeof VHDX_HEADER.decode>;

export interface Region {
  readonly fileOffset: number;
  readonly length: number;
}

export interface HeaderSection {
  readonly creator: string;
  readonly header: VhdxHeader;
  /** 1 or 2: which header is current. */
  readonly headerIndex: number;
  readonly bat: Region;
  readonly metadata: Region;
  /** The log's place in the file (length 0 when none). */
  readonly log: Region;
}

const BAT_BYTES = guidToBytes(BAT_GUID);
const METADATA_BYTES = guidToBytes(METADATA_GUID);

/** CRC-32C of `size` bytes at `at` with the 4-byte checksum at `at + 4` taken as zero. */
export function structureCrc(source: Buffer, at: number, size: number): number {
  const copy = Buffer.from(source.subarray(at, at + size));
  copy.writeUInt32LE(0, 4);
  return crc32c(copy);
}

function validHeader(section: Buffer, at: number): VhdxHeader | undefined {
  const header = VHDX_HEADER.decode(section, at);
  if (header.signature.toString('latin1') !== VHDX_HEADER_SIGNATURE) return undefined;
  if (structureCrc(section, at, HEADER_SIZE) !== header.checksum) return undefined;
  if (header.version !== VHDX_HEADER_VERSION) return undefined;
  return header;
}

function chooseHeader(file: VhdxFile, section: Buffer): { header: VhdxHeader; headerIndex: number } {
  const first = validHeader(section, HEADER1_OFFSET);
  const second = validHeader(section, HEADER2_OFFSET);
  if (first === undefined && second === undefined)
    throw file.corrupt('no valid VHDX header (both copies fail their signature, CRC-32C or version)');
  if (first === undefined || second === undefined)
    return first !== undefined ? { header: first, headerIndex: 1 } : { header: second as VhdxHeader, headerIndex: 2 };
  if (first.sequenceNumber > second.sequenceNumber) return { header: first, headerIndex: 1 };
  if (second.sequenceNumber > first.sequenceNumber) return { header: second, headerIndex: 2 };
  const same = section
    .subarray(HEADER1_OFFSET, HEADER1_OFFSET + HEADER_SIZE)
    .equals(section.subarray(HEADER2_OFFSET, HEADER2_OFFSET + HEADER_SIZE));
  if (!same) throw file.corrupt(`both VHDX headers carry sequence number ${first.sequenceNumber} but differ`);
  return { header: first, headerIndex: 1 };
}

function checkLog(file: VhdxFile, header: VhdxHeader): Region {
  if (header.logVersion !== VHDX_LOG_VERSION) throw file.unsupported(`VHDX log version ${header.logVersion} is not supported`);
  if (header.logLength === 0) return { fileOffset: 0, length: 0 };
  const offset = header.logOffset;
  if (
    header.logLength % MiB !== 0 ||
    offset % BigInt(MiB) !== 0n ||
    offset < BigInt(HEADER_SECTION_SIZE) ||
    offset + BigInt(header.logLength) > BigInt(file.sizeBytes)
  ) {
    throw file.corrupt(`VHDX log (offset ${offset}, length ${header.logLength}) is not 1 MiB-aligned inside the file`);
  }
  return { fileOffset: Number(offset), length: header.logLength };
}

interface RegionTable {
  readonly bat: Region;
  readonly metadata: Region;
}

function parseRegionTable(file: VhdxFile, section: Buffer, at: number): RegionTable | string {
  const head = REGION_TABLE_HEADER.decode(section, at);
  if (head.signature.toString('latin1') !== VHDX_REGION_TABLE_SIGNATURE) return 'signature is not "regi"';
  if (structureCrc(section, at, REGION_TABLE_SIZE) !== head.checksum) return 'CRC-32C mismatch';
  if (head.entryCount > REGION_TABLE_MAX_ENTRIES) return `${head.entryCount} entries (at most ${REGION_TABLE_MAX_ENTRIES})`;
  let bat: Region | undefined;
  let metadata: Region | undefined;
  for (let index = 0; index < head.entryCount; index++) {
    const entry = REGION_TABLE_ENTRY.decode(section, at + REGION_TABLE_HEADER.sizeBytes + index * REGION_TABLE_ENTRY.sizeBytes);
    const isBat = entry.guid.equals(BAT_BYTES);
    const isMetadata = entry.guid.equals(METADATA_BYTES);
    if (!isBat && !isMetadata) {
      if ((entry.required & REGION_REQUIRED) !== 0) {
        throw file.unsupported(`VHDX region ${guidToText(entry.guid)} is marked required and sbm does not know it`, {
          region: guidToText(entry.guid),
        });
      }
      continue;
    }
    const name = isBat ? 'BAT region' : 'metadata region';
    if ((isBat ? bat : metadata) !== undefined) return `${name} listed twice`;
    const end = entry.fileOffset + BigInt(entry.length);
    if (
      entry.fileOffset % BigInt(MiB) !== 0n ||
      entry.fileOffset < BigInt(HEADER_SECTION_SIZE) ||
      entry.length === 0 ||
      entry.length % MiB !== 0
    ) {
      return `${name} (offset ${entry.fileOffset}, length ${entry.length}) is not 1 MiB-aligned past the header section`;
    }
    if (end > BigInt(file.sizeBytes)) return `${name} (offset ${entry.fileOffset}, length ${entry.length}) lies past the end of the file`;
    const region = { fileOffset: Number(entry.fileOffset), length: entry.length };
    if (isBat) bat = region;
    else metadata = region;
  }
  if (bat === undefined) return 'no BAT region';
  if (metadata === undefined) return 'no metadata region';
  return { bat, metadata };
}

function overlaps(a: Region, b: Region): boolean {
  return a.length > 0 && b.length > 0 && a.fileOffset < b.fileOffset + b.length && b.fileOffset < a.fileOffset + a.length;
}

export async function readHeaderSection(file: VhdxFile, onWarning: WarningSink): Promise<HeaderSection> {
  const usedBytes = REGION_TABLE2_OFFSET + REGION_TABLE_SIZE;
  if (file.sizeBytes < HEADER_SECTION_SIZE)
    throw file.corrupt(`${file.sizeBytes} bytes is shorter than the 1 MiB VHDX header section: truncated`);
  const section = await file.read(usedBytes, 0, 'VHDX header section');
  const identifier = FILE_IDENTIFIER.decode(section, 0, file.path);
  const creator = identifier.creator.toString('utf16le').replace(/\0.*$/s, '');
  const { header, headerIndex } = chooseHeader(file, section);
  const log = checkLog(file, header);
  let table = parseRegionTable(file, section, REGION_TABLE1_OFFSET);
  if (typeof table === 'string') {
    const why = table;
    table = parseRegionTable(file, section, REGION_TABLE2_OFFSET);
    if (typeof table === 'string') throw file.corrupt(`both VHDX region tables are damaged (table 1: ${why}; table 2: ${table})`);
    onWarning({
      code: 'SBM_VHDX_REGION_TABLE_COPY',
      message: `${file.path}: region table 1 is damaged (${why}); using table 2`,
      data: { path: file.path },
    });
  }
  const { bat, metadata } = table;
  if (overlaps(bat, metadata) || overlaps(bat, log) || overlaps(metadata, log))
    throw file.corrupt('the VHDX BAT, metadata and log regions overlap');
  return { creator, header, headerIndex, bat, metadata, log };
}
