// The UDIF tables, validated whole before any byte is served: the koly trailer, the XML plist's
// `blkx` entries and each entry's `mish` chunk table. Every range must lie inside the file, every
// chunk inside its table's sectors, and all chunks together must be ordered and non-overlapping.

import { SbmError } from '../../lib/errors.js';
import { CHUNK, CHUNK_NAMES, DMG_SECTOR_SIZE, KOLY, MISH_CHUNK, MISH_HEADER } from './layouts.js';

/** Largest XML plist read (hdiutil's are a few hundred KiB even for large disks). */
export const MAX_XML_BYTES = 16 * 1024 * 1024;
/** Largest decompressed chunk (hdiutil writes 1 MiB chunks); bounds memory per read. */
export const MAX_CHUNK_BYTES = 64 * 1024 * 1024;

export type KolyValues = ReturnType<typeof KOLY.decode>;

/** One chunk, in disk bytes and absolute file offsets. */
export interface DmgChunk {
  readonly type: number;
  readonly offset: number;
  readonly length: number;
  readonly fileOffset: number;
  readonly fileLength: number;
  /** Index of its blkx in DmgTables.partitions. */
  readonly partition: number;
  /** Its place among the partition's checksummed chunks (all but ignore), or -1 for ignore chunks. */
  readonly sequence: number;
}

/** One blkx table: where it lies, its checksum, and the chunks its checksum covers in sector order. */
export interface DmgPartition {
  readonly name: string;
  readonly firstSector: number;
  readonly sectorCount: number;
  readonly checksumType: number;
  /** The first 32 bits of the checksum field (all of a CRC-32). */
  readonly checksum: number;
  readonly checksummed: readonly DmgChunk[];
}

export interface DmgTables {
  readonly koly: KolyValues;
  readonly sizeBytes: number;
  readonly chunks: readonly DmgChunk[];
  readonly partitions: readonly DmgPartition[];
  readonly chunkCounts: Record<string, number>;
}

const DECODABLE = new Set<number>([CHUNK.zero, CHUNK.ignore, CHUNK.raw, CHUNK.zlib, CHUNK.bzip2, CHUNK.adc, CHUNK.lzma]);

export function parseKoly(path: string, trailer: Buffer, fileSize: number): KolyValues {
  const koly = KOLY.decode(trailer, 0, path);
  const corrupt = (what: string): SbmError => new SbmError('SBM_CORRUPT', `${path}: UDIF trailer ${what}`, { path });
  if (koly.version !== 4 || koly.headerSize !== 512)
    throw corrupt(`has version ${koly.version}, size ${koly.headerSize} (expected 4, 512)`);
  const body = fileSize - KOLY.sizeBytes;
  if (koly.dataForkOffset + koly.dataForkLength > body) throw corrupt('data fork lies past the end of the file');
  if (koly.segmentCount > 1)
    throw new SbmError('SBM_UNSUPPORTED', `${path}: segmented UDIF images (${koly.segmentCount} segments) are not supported`, { path });
  if (koly.xmlLength === 0)
    throw new SbmError('SBM_UNSUPPORTED', `${path}: UDIF image without an XML plist (resource fork only) is not supported`, { path });
  if (koly.xmlLength > MAX_XML_BYTES) throw corrupt(`XML plist of ${koly.xmlLength} bytes is larger than ${MAX_XML_BYTES}`);
  if (koly.xmlOffset + koly.xmlLength > body) throw corrupt('XML plist lies past the end of the file');
  if (!Number.isSafeInteger(koly.sectorCount * DMG_SECTOR_SIZE)) throw corrupt(`sector count ${koly.sectorCount} is too large`);
  return koly;
}

interface BlkxEntry {
  readonly name: string;
  readonly data: Buffer;
}

/** The `blkx` entries of the plist's resource-fork dictionary. */
export function blkxEntries(path: string, root: unknown): BlkxEntry[] {
  const corrupt = (what: string): SbmError => new SbmError('SBM_CORRUPT', `${path}: UDIF plist ${what}`, { path });
  const fork = isRecord(root) ? root['resource-fork'] : undefined;
  const blkx = isRecord(fork) ? fork.blkx : undefined;
  if (!Array.isArray(blkx)) throw corrupt('has no resource-fork/blkx array');
  return blkx.map((entry: unknown, index) => {
    if (!isRecord(entry) || !(entry.Data instanceof Uint8Array)) throw corrupt(`blkx entry ${index} has no Data`);
    const name = typeof entry.Name === 'string' ? entry.Name : typeof entry.CFName === 'string' ? entry.CFName : `blkx ${index}`;
    return { name, data: Buffer.from(entry.Data.buffer, entry.Data.byteOffset, entry.Data.byteLength) };
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** Decodes and validates every mish table against the trailer. */
export function buildTables(path: string, koly: KolyValues, entries: readonly BlkxEntry[]): DmgTables {
  const corrupt = (what: string): SbmError => new SbmError('SBM_CORRUPT', `${path}: UDIF ${what}`, { path });
  const chunks: DmgChunk[] = [];
  const partitions: DmgPartition[] = [];
  const chunkCounts: Record<string, number> = {};
  for (const entry of entries) {
    const where = `${path} (blkx "${entry.name}")`;
    const mish = MISH_HEADER.decode(entry.data, 0, where);
    if (mish.firstSector + mish.sectorCount > koly.sectorCount) throw corrupt(`blkx "${entry.name}" lies past the disk's sector count`);
    if (mish.chunkCount > (entry.data.length - MISH_HEADER.sizeBytes) / MISH_CHUNK.sizeBytes)
      throw corrupt(`blkx "${entry.name}" declares ${mish.chunkCount} chunks but holds fewer`);
    const checksummed: DmgChunk[] = [];
    const partition = partitions.length;
    partitions.push({
      name: entry.name,
      firstSector: mish.firstSector,
      sectorCount: mish.sectorCount,
      checksumType: mish.checksumType,
      checksum: mish.checksum.readUInt32BE(0),
      checksummed,
    });
    for (let i = 0; i < mish.chunkCount; i++) {
      const chunk = MISH_CHUNK.decode(entry.data, MISH_HEADER.sizeBytes + i * MISH_CHUNK.sizeBytes, where);
      const name = CHUNK_NAMES.get(chunk.type) ?? `0x${chunk.type.toString(16).padStart(8, '0')}`;
      chunkCounts[name] = (chunkCounts[name] ?? 0) + 1;
      if (chunk.type === CHUNK.comment || chunk.type === CHUNK.terminator) continue;
      if (!CHUNK_NAMES.has(chunk.type)) throw corrupt(`blkx "${entry.name}" chunk ${i} has unknown type ${name}`);
      if (chunk.sectorCount === 0) continue;
      if (chunk.sector + chunk.sectorCount > mish.sectorCount) throw corrupt(`blkx "${entry.name}" chunk ${i} lies outside its table`);
      const length = chunk.sectorCount * DMG_SECTOR_SIZE;
      if (chunk.type !== CHUNK.zero && chunk.type !== CHUNK.ignore) {
        if (!DECODABLE.has(chunk.type))
          throw new SbmError('SBM_UNSUPPORTED', `${path}: UDIF ${name} chunks are not supported (blkx "${entry.name}")`, { path });
        if (length > MAX_CHUNK_BYTES) throw corrupt(`blkx "${entry.name}" chunk ${i} is larger than ${MAX_CHUNK_BYTES} bytes`);
        if (chunk.type === CHUNK.raw && chunk.compressedLength !== length)
          throw corrupt(`blkx "${entry.name}" raw chunk ${i} holds ${chunk.compressedLength} bytes for ${length}`);
        if (
          chunk.compressedLength > MAX_CHUNK_BYTES ||
          mish.dataOffset + chunk.compressedOffset + chunk.compressedLength > koly.dataForkLength
        )
          throw corrupt(`blkx "${entry.name}" chunk ${i} lies outside the data fork`);
      }
      const ignored = chunk.type === CHUNK.ignore;
      const entryChunk: DmgChunk = {
        type: chunk.type,
        offset: (mish.firstSector + chunk.sector) * DMG_SECTOR_SIZE,
        length,
        fileOffset: koly.dataForkOffset + mish.dataOffset + chunk.compressedOffset,
        fileLength: chunk.compressedLength,
        partition,
        sequence: ignored ? -1 : checksummed.length,
      };
      chunks.push(entryChunk);
      if (!ignored) checksummed.push(entryChunk);
    }
    // The checksum runs in sector order; tables list chunks that way, and overlaps are refused below.
    if (checksummed.some((chunk, index) => index > 0 && chunk.offset < (checksummed[index - 1] as DmgChunk).offset))
      throw corrupt(`blkx "${entry.name}" lists its chunks out of sector order`);
  }
  chunks.sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < chunks.length; i++) {
    const previous = chunks[i - 1] as DmgChunk;
    if (previous.offset + previous.length > (chunks[i] as DmgChunk).offset)
      throw corrupt(`chunks overlap at disk offset ${(chunks[i] as DmgChunk).offset}`);
  }
  return { koly, sizeBytes: koly.sectorCount * DMG_SECTOR_SIZE, chunks, partitions, chunkCounts };
}
