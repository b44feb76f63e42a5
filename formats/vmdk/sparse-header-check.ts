// Validates a hosted sparse extent header (magic, then version, then feature bits, then sizes, each
// bounded) and turns it into the numbers a GrainMap needs. For streamOptimized files whose header
// says GD_AT_END, the footer (a header copy with the real gdOffset) is located first.

import { SbmError } from '../../lib/errors.js';
import type { WarningSink } from '../../lib/warnings.js';
import { toSafeInteger } from '../../lib/binary-layout.js';
import {
  GRAIN_MARKER_FOOTER,
  MAX_COMPRESSED_GRAIN_SIZE_SECTORS,
  MAX_GD_ENTRIES,
  MAX_GRAIN_SIZE_SECTORS,
  MAX_NUM_GTES_PER_GT,
  SECTOR_SIZE,
  SPARSEFLAG_COMPRESSED,
  SPARSEFLAG_EMBEDDED_LBA,
  SPARSEFLAG_INCOMPAT_FLAGS,
  SPARSEFLAG_KNOWN_INCOMPAT,
  SPARSEFLAG_VALID_NEWLINE_DETECTOR,
  SPARSEFLAG_ZEROED_GTE,
  SPARSE_DOUBLE_END_LINE_CHAR1,
  SPARSE_DOUBLE_END_LINE_CHAR2,
  SPARSE_GD_AT_END,
  SPARSE_MAGICNUMBER,
  SPARSE_MAGICNUMBER_INCOMPLETE,
  SPARSE_NON_END_LINE_CHAR,
  SPARSE_SINGLE_END_LINE_CHAR,
  SPARSE_VERSION_MAX,
  SPARSE_VERSION_MIN,
  VMDK_COMPRESSION_DEFLATE,
  VMDK_COMPRESSION_NONE,
} from './constants.js';
import { METADATA_MARKER, type SparseExtentHeader, decodeSparseHeader } from './sparse-header.js';
import { readExact, type ExtentHandle } from './vmdk-extent.js';

export interface SparseGeometry {
  /** Extent type for `sbm info`. */
  readonly label: string;
  readonly version: number;
  readonly flags: number;
  readonly capacitySectors: number;
  readonly grainSizeSectors: number;
  readonly gtEntries: number;
  readonly gdEntries: number;
  readonly gdOffsetSectors: number;
  readonly overheadSectors: number;
  readonly descriptorOffsetSectors: number;
  readonly descriptorSizeSectors: number;
  readonly compressed: boolean;
  readonly zeroedGrainsFlag: boolean;
  readonly uncleanShutdown: boolean;
  /** 'header' | 'footer': where gdOffset came from. */
  readonly gdSource: string;
}

const MAX_DESCRIPTOR_SECTORS = 2048;
const FOOTER_SCAN_BYTES = 1024 * 1024;

function corrupt(path: string, why: string): SbmError {
  return new SbmError('SBM_CORRUPT', `${path}: ${why}`, { path });
}

/** Checks the fields that do not depend on the file size; returns the decoded header. */
export function checkHeaderFields(header: SparseExtentHeader, path: string): void {
  if (header.magicNumber === SPARSE_MAGICNUMBER_INCOMPLETE) throw corrupt(path, 'sparse extent is incomplete (placeholder magic "kdmv")');
  if (header.magicNumber !== SPARSE_MAGICNUMBER) throw corrupt(path, 'not a VMDK sparse extent (expected magic "KDMV")');
  if (header.version < SPARSE_VERSION_MIN || header.version > SPARSE_VERSION_MAX) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: unsupported sparse extent version ${header.version}`, { path });
  }
  const incompat = header.flags & SPARSEFLAG_INCOMPAT_FLAGS;
  if ((incompat & ~SPARSEFLAG_KNOWN_INCOMPAT) !== 0) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: unknown incompatible feature flags 0x${(header.flags >>> 0).toString(16)}`, { path });
  }
  if ((header.flags & SPARSEFLAG_EMBEDDED_LBA) !== 0 && (header.flags & SPARSEFLAG_COMPRESSED) === 0) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: grain markers without compression are not supported`, { path });
  }
  if ((header.flags & SPARSEFLAG_VALID_NEWLINE_DETECTOR) !== 0) {
    const ok =
      header.singleEndLineChar === SPARSE_SINGLE_END_LINE_CHAR &&
      header.nonEndLineChar === SPARSE_NON_END_LINE_CHAR &&
      header.doubleEndLineChar1 === SPARSE_DOUBLE_END_LINE_CHAR1 &&
      header.doubleEndLineChar2 === SPARSE_DOUBLE_END_LINE_CHAR2;
    if (!ok) throw corrupt(path, 'newline check bytes are altered (file damaged by a text-mode transfer?)');
  }
}

async function readFooter(handle: ExtentHandle, path: string, fileSize: number): Promise<SparseExtentHeader> {
  // Normal place: footer marker at EOF-1536, footer at EOF-1024, end-of-stream marker at EOF-512.
  // Scan backwards from there for a FOOTER metadata marker followed by a KDMV sector, because
  // appended padding or a cut tail moves it.
  const tailBytes = Math.min(fileSize, FOOTER_SCAN_BYTES);
  const tailStart = fileSize - tailBytes;
  const tail = Buffer.alloc(tailBytes);
  await readExact(handle, tail, tailStart, path);
  const firstAligned = (SECTOR_SIZE - (tailStart % SECTOR_SIZE)) % SECTOR_SIZE;
  const lastAt = tailBytes - 2 * SECTOR_SIZE;
  const start = lastAt >= firstAligned ? lastAt - ((lastAt - firstAligned) % SECTOR_SIZE) : -1;
  for (let at = start; at >= firstAligned; at -= SECTOR_SIZE) {
    const marker = METADATA_MARKER.decode(tail, at, path);
    if (marker.size !== 0 || marker.type !== GRAIN_MARKER_FOOTER) continue;
    const footer = decodeSparseHeader(tail, at + SECTOR_SIZE, path);
    if (footer.magicNumber !== SPARSE_MAGICNUMBER || footer.gdOffset === SPARSE_GD_AT_END) continue;
    return footer;
  }
  throw corrupt(path, 'streamOptimized footer not found (header says the grain directory is at the end)');
}

/** Decodes and validates the header of an open sparse extent, reading the footer if needed. */
export async function readSparseGeometry(
  handle: ExtentHandle,
  path: string,
  fileSize: number,
  onWarning: WarningSink,
): Promise<SparseGeometry> {
  if (fileSize < SECTOR_SIZE) throw corrupt(path, `sparse extent is truncated (${fileSize} bytes)`);
  const first = Buffer.alloc(SECTOR_SIZE);
  await readExact(handle, first, 0, path);
  let header = decodeSparseHeader(first, 0, path);
  checkHeaderFields(header, path);
  let gdSource = 'header';
  if (header.gdOffset === SPARSE_GD_AT_END) {
    const footer = await readFooter(handle, path, fileSize);
    checkHeaderFields(footer, path);
    header = { ...header, gdOffset: footer.gdOffset, rgdOffset: footer.rgdOffset };
    gdSource = 'footer';
  }
  const compressed = (header.flags & SPARSEFLAG_COMPRESSED) !== 0 || header.compressAlgorithm === VMDK_COMPRESSION_DEFLATE;
  if (header.compressAlgorithm !== VMDK_COMPRESSION_NONE && header.compressAlgorithm !== VMDK_COMPRESSION_DEFLATE) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: unknown compression algorithm ${header.compressAlgorithm}`, { path });
  }
  if (compressed && (header.flags & SPARSEFLAG_EMBEDDED_LBA) === 0) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: compressed grains without markers are not supported`, { path });
  }
  if (compressed && header.compressAlgorithm !== VMDK_COMPRESSION_DEFLATE) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: compressed flag set but compression algorithm is ${header.compressAlgorithm}`, {
      path,
    });
  }

  const grainSizeSectors = toSafeInteger(header.grainSize, 'grainSize', path);
  const maxGrain = compressed ? MAX_COMPRESSED_GRAIN_SIZE_SECTORS : MAX_GRAIN_SIZE_SECTORS;
  if (grainSizeSectors < 1 || grainSizeSectors > maxGrain || (grainSizeSectors & (grainSizeSectors - 1)) !== 0) {
    throw corrupt(path, `grain size ${header.grainSize} sectors is not a power of two between 1 and ${maxGrain}`);
  }
  if (grainSizeSectors < 8 || grainSizeSectors > 128) {
    onWarning({ code: 'SBM_VMDK_GRAIN_SIZE', message: `${path}: unusual grain size of ${grainSizeSectors} sectors`, data: { path } });
  }
  const gtEntries = header.numGTEsPerGT;
  if (gtEntries < 1 || gtEntries > MAX_NUM_GTES_PER_GT) throw corrupt(path, `numGTEsPerGT ${gtEntries} is out of range`);
  const capacitySectors = toSafeInteger(header.capacity, 'capacity', path);
  if (capacitySectors * SECTOR_SIZE > Number.MAX_SAFE_INTEGER) throw corrupt(path, `capacity of ${capacitySectors} sectors is absurd`);
  const gdEntries = Math.ceil(capacitySectors / (gtEntries * grainSizeSectors));
  const gdOffsetSectors = gdEntries === 0 ? 0 : toSafeInteger(header.gdOffset, 'gdOffset', path);
  if (gdOffsetSectors * SECTOR_SIZE + gdEntries * 4 > fileSize) {
    throw corrupt(
      path,
      `grain directory for a capacity of ${capacitySectors} sectors lies past end of file (absurd capacity or truncated file)`,
    );
  }
  if (gdEntries > MAX_GD_ENTRIES) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: grain directory of ${gdEntries} entries is too large`, { path });
  }
  const overheadSectors = toSafeInteger(header.overHead, 'overHead', path);
  if (overheadSectors * SECTOR_SIZE > fileSize)
    throw corrupt(path, `sparse extent is truncated (shorter than its ${overheadSectors}-sector metadata)`);
  const descriptorOffsetSectors = toSafeInteger(header.descriptorOffset, 'descriptorOffset', path);
  const descriptorSizeSectors = toSafeInteger(header.descriptorSize, 'descriptorSize', path);
  if (descriptorOffsetSectors > 0) {
    if (descriptorSizeSectors > MAX_DESCRIPTOR_SECTORS)
      throw corrupt(path, `embedded descriptor of ${descriptorSizeSectors} sectors is too large`);
    if ((descriptorOffsetSectors + descriptorSizeSectors) * SECTOR_SIZE > fileSize)
      throw corrupt(path, 'embedded descriptor lies past end of file');
  }
  const uncleanShutdown = header.uncleanShutdown !== 0;
  if (uncleanShutdown) {
    onWarning({
      code: 'SBM_VMDK_UNCLEAN',
      message: `${path}: unclean-shutdown flag is set (the disk was not closed cleanly)`,
      data: { path },
    });
  }
  return {
    label: compressed ? 'SPARSE (streamOptimized)' : 'SPARSE',
    version: header.version,
    flags: header.flags,
    capacitySectors,
    grainSizeSectors,
    gtEntries,
    gdEntries,
    gdOffsetSectors,
    overheadSectors,
    descriptorOffsetSectors,
    descriptorSizeSectors,
    compressed,
    zeroedGrainsFlag: (header.flags & SPARSEFLAG_ZEROED_GTE) !== 0,
    uncleanShutdown,
    gdSource,
  };
}
