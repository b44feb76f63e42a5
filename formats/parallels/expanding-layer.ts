// One expanding Parallels image (.hds, "Compressed" in DiskDescriptor.xml) as a layer: the header,
// then the BAT, one u32 per cluster of `tracks` sectors:
//
//   [ header 64 ][ BAT: bat_entries x u32 ][ ... data clusters ... ]
//   entry 0      not in this layer (the layer below, or zeros at the root)
//   entry e      old magic: the cluster at byte e * 512; ext magic: at byte e * tracks * 512
//
// Every entry is checked at open (after the BAT, inside the file), so reads never meet a bad one.
// The Format Extension (dirty bitmaps) is a change-tracking hint for Parallels and is ignored.

import type { WarningSink } from '../../lib/warnings.js';
import { HEADER_CLOSED_MAGIC, HEADER_INUSE_MAGIC, HEADER_MAGIC, HEADER_MAGIC2, HEADER_SIZE, HEADER_VERSION } from './constants.js';
import { MAX_BAT_ENTRIES, SECTOR_SIZE } from './constants.js';
import { PARALLELS_HEADER } from './layouts.js';
import { LayerFile } from './layer-file.js';

/** Where `length` bytes from a layer-relative offset live: in this layer's file, or not here. */
export interface Location {
  /** File byte offset, or undefined when this layer does not hold the range. */
  readonly fileOffset: number | undefined;
  readonly length: number;
}

export interface ParallelsLayer {
  readonly path: string;
  readonly file: LayerFile;
  /** Bytes of virtual disk the layer describes. */
  readonly sizeBytes: number;
  /** At most `maxLength` bytes from `offset` that share one answer. */
  locate(offset: number, maxLength: number): Location;
  describe(): Record<string, unknown>;
}

function inUseState(value: number): string {
  if (value === HEADER_INUSE_MAGIC) return 'in use (not closed cleanly)';
  if (value === HEADER_CLOSED_MAGIC) return 'closed';
  if (value === 0) return 'closed (no extension support)';
  // Parallels also writes version tags here (libphdi saw "pd17", "pd22"): show printable ones as text.
  const text = Buffer.alloc(4);
  text.writeUInt32LE(value);
  const printable = [...text].every((byte) => byte >= 0x20 && byte < 0x7f);
  return `${printable ? `"${text.toString('latin1')}"` : 'unknown'} (0x${value.toString(16).padStart(8, '0')})`;
}

export class ExpandingLayer implements ParallelsLayer {
  readonly sizeBytes: number;
  readonly clusterBytes: number;
  readonly inUse: boolean;
  private constructor(
    readonly file: LayerFile,
    readonly magic: string,
    private readonly bat: Uint32Array,
    private readonly multiplier: number,
    readonly values: ReturnType<typeof PARALLELS_HEADER.decode>,
    readonly allocatedClusters: number,
    nbSectors: number,
  ) {
    this.sizeBytes = nbSectors * SECTOR_SIZE;
    this.clusterBytes = values.tracks * SECTOR_SIZE;
    this.inUse = values.inUse === HEADER_INUSE_MAGIC;
  }

  get path(): string {
    return this.file.path;
  }

  /** Opens and validates the image at `path` (header, then every BAT entry). */
  static async open(path: string, onWarning: WarningSink): Promise<ExpandingLayer> {
    const file = await LayerFile.open(path);
    try {
      return await ExpandingLayer.fromFile(file, onWarning);
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  private static async fromFile(file: LayerFile, onWarning: WarningSink): Promise<ExpandingLayer> {
    if (file.sizeBytes < HEADER_SIZE) throw file.corrupt(`${file.sizeBytes} bytes is too short for a Parallels image header`);
    const head = Buffer.alloc(HEADER_SIZE);
    await file.readExact(head, 0, 'Parallels header');
    const values = PARALLELS_HEADER.decode(head, 0, file.path);
    const magic = values.magic.toString('latin1');
    if (magic !== HEADER_MAGIC && magic !== HEADER_MAGIC2) throw file.corrupt('not a Parallels expanding image (bad magic)');
    if (values.version !== HEADER_VERSION) throw file.unsupported(`Parallels image version ${values.version} (only 2 is known)`);
    if (values.tracks === 0) throw file.corrupt('cluster size of zero sectors (tracks = 0)');
    if (values.batEntries > MAX_BAT_ENTRIES) throw file.unsupported(`BAT of ${values.batEntries} entries is larger than sbm reads`);
    // The old magic counts only the low 32 bits of nb_sectors (qemu masks the high half too).
    const nbSectorsBig = magic === HEADER_MAGIC ? values.nbSectors & 0xffffffffn : values.nbSectors;
    const clusterSectors = BigInt(values.tracks);
    if (nbSectorsBig > BigInt(values.batEntries) * clusterSectors) {
      throw file.corrupt(`${nbSectorsBig} sectors need more clusters than the ${values.batEntries} BAT entries`);
    }
    const nbSectors = Number(nbSectorsBig);
    const batEnd = HEADER_SIZE + values.batEntries * 4;
    if (batEnd > file.sizeBytes) throw file.corrupt(`the BAT (${values.batEntries} entries) runs past the end of the file: truncated`);
    const raw = Buffer.alloc(values.batEntries * 4);
    await file.readExact(raw, HEADER_SIZE, 'Parallels BAT');
    const bat = new Uint32Array(values.batEntries);
    for (let index = 0; index < bat.length; index++) bat[index] = raw.readUInt32LE(index * 4);
    const multiplier = magic === HEADER_MAGIC ? 1 : values.tracks;
    const allocated = checkBat(file, bat, multiplier, values.tracks * SECTOR_SIZE, nbSectors * SECTOR_SIZE, batEnd);
    if (values.inUse === HEADER_INUSE_MAGIC) {
      onWarning({
        code: 'SBM_PARALLELS_IN_USE',
        message: `${file.path}: the image is marked in use (open read-write, or not closed cleanly); reading what is on disk now`,
        data: { path: file.path },
      });
    }
    return new ExpandingLayer(file, magic, bat, multiplier, values, allocated, nbSectors);
  }

  locate(offset: number, maxLength: number): Location {
    const cluster = Math.floor(offset / this.clusterBytes);
    const inCluster = offset - cluster * this.clusterBytes;
    const length = Math.min(maxLength, this.clusterBytes - inCluster);
    const entry = this.bat[cluster] ?? 0;
    if (entry === 0 || offset >= this.sizeBytes) return { fileOffset: undefined, length };
    return { fileOffset: entry * this.multiplier * SECTOR_SIZE + inCluster, length };
  }

  describe(): Record<string, unknown> {
    return {
      file: this.path,
      type: 'expanding',
      magic: this.magic,
      clusterSizeBytes: this.clusterBytes,
      allocatedClusters: this.allocatedClusters,
      sizeBytes: this.sizeBytes,
      inUse: inUseState(this.values.inUse),
      formatExtension: this.values.extensionOffsetSectors !== 0n,
    };
  }
}

/** Validates every non-zero BAT entry; returns how many there are. */
function checkBat(file: LayerFile, bat: Uint32Array, multiplier: number, clusterBytes: number, diskBytes: number, batEnd: number): number {
  let allocated = 0;
  for (let cluster = 0; cluster < bat.length; cluster++) {
    const entry = bat[cluster] ?? 0;
    if (entry === 0) continue;
    allocated++;
    const start = entry * multiplier * SECTOR_SIZE;
    // The last cluster of a disk that is not a cluster multiple only needs its part inside the disk.
    const needed = Math.max(0, Math.min(clusterBytes, diskBytes - cluster * clusterBytes));
    if (!Number.isSafeInteger(start + needed) || start < batEnd || start + needed > file.sizeBytes) {
      throw file.corrupt(`BAT entry ${cluster} (${entry}) points outside the data area (file is ${file.sizeBytes} bytes)`, {
        cluster,
        entry,
      });
    }
  }
  return allocated;
}

/** A `Plain` layer: raw bytes, layer offset o at file offset o. Only ever a chain's root. */
export class PlainLayer implements ParallelsLayer {
  private constructor(
    readonly file: LayerFile,
    readonly sizeBytes: number,
  ) {}

  get path(): string {
    return this.file.path;
  }

  static async open(path: string, sizeBytes: number): Promise<PlainLayer> {
    const file = await LayerFile.open(path);
    if (file.sizeBytes < sizeBytes) {
      await file.close();
      throw file.corrupt(`plain image holds ${file.sizeBytes} bytes, the descriptor needs ${sizeBytes}: truncated`);
    }
    return new PlainLayer(file, sizeBytes);
  }

  locate(offset: number, maxLength: number): Location {
    return { fileOffset: offset, length: maxLength };
  }

  describe(): Record<string, unknown> {
    return { file: this.path, type: 'plain', sizeBytes: this.sizeBytes };
  }
}
