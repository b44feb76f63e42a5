// UDIF checksums, CRC-32 (type 2) where present:
//   - the trailer's master checksum: CRC-32 of every blkx's 4-byte checksum, in plist order; cheap,
//     checked at open.
//   - each blkx's checksum: CRC-32 of the partition's decoded data in sector order, zero-fill
//     chunks as zeros, ignore chunks and unmapped sectors left out (what hdiutil computes). Checked
//     as reads go: each chunk's CRC is taken when it is first decoded, and once every chunk of a
//     partition has been seen, in any order, the pieces are combined and compared. A whole-disk
//     read (convert, export, compare) therefore checks every blkx; a mismatch fails that read.
//   - the trailer's data-fork checksum: CRC-32 of the stored (compressed) data fork, read in full
//     only by DmgImage.verify (`sbm info --verify`), as it costs a pass over the file.

import { crc32Bulk, crc32Combine, crc32OfZeros } from '../../lib/checksums.js';
import { SbmError } from '../../lib/errors.js';
import type { DmgChunk, DmgPartition, KolyValues } from './dmg-tables.js';
import { CHECKSUM_CRC32, CHUNK } from './layouts.js';

const hex = (value: number): string => value.toString(16).padStart(8, '0');

/** Refuses a trailer whose master checksum does not match the blkx checksums it covers. */
export function checkMasterChecksum(path: string, koly: KolyValues, partitions: readonly DmgPartition[]): void {
  if (koly.checksumType !== CHECKSUM_CRC32 || partitions.some((part) => part.checksumType !== CHECKSUM_CRC32)) return;
  const values = Buffer.alloc(4 * partitions.length);
  for (const [index, part] of partitions.entries()) values.writeUInt32BE(part.checksum, 4 * index);
  const stored = koly.checksum.readUInt32BE(0);
  const computed = crc32Bulk(values);
  if (stored !== computed)
    throw new SbmError('SBM_CORRUPT', `${path}: UDIF master checksum ${hex(stored)} does not match the blkx checksums (${hex(computed)})`, {
      path,
    });
}

/** Per-partition CRC-32 pieces, combined and compared once a partition's chunks have all been decoded. */
export class BlkxChecksums {
  private readonly pending: Array<Map<number, number> | undefined>;
  private verifiedCount = 0;
  // A partition whose checksum failed keeps failing every later read of it (a mount's client
  // must not get the data on a retry).
  private readonly failures = new Map<number, SbmError>();

  constructor(
    private readonly path: string,
    private readonly partitions: readonly DmgPartition[],
  ) {
    this.pending = partitions.map((part) => {
      if (part.checksumType !== CHECKSUM_CRC32) return undefined;
      const pieces = new Map<number, number>();
      part.checksummed.forEach((chunk, index) => {
        if (chunk.type === CHUNK.zero) pieces.set(index, crc32OfZeros(chunk.length));
      });
      return pieces;
    });
    for (let index = 0; index < partitions.length; index++) this.settleIfComplete(index);
  }

  /** Partitions whose checksum has been compared and found equal. */
  get verified(): number {
    return this.verifiedCount;
  }

  /** Partitions with a CRC-32 checksum not yet compared (some chunk not decoded yet). */
  get unverified(): number {
    return this.pending.filter((pieces) => pieces !== undefined).length;
  }

  /** Throws the SBM_CORRUPT of `chunk`'s partition if its checksum has failed. */
  check(chunk: DmgChunk): void {
    const failure = this.failures.get(chunk.partition);
    if (failure !== undefined) throw failure;
  }

  /** Takes the decoded bytes of `chunk` (the whole chunk); throws SBM_CORRUPT when its partition's checksum fails. */
  record(chunk: DmgChunk, data: Uint8Array): void {
    const pieces = this.pending[chunk.partition];
    if (pieces === undefined || chunk.sequence < 0 || pieces.has(chunk.sequence)) return;
    pieces.set(chunk.sequence, crc32Bulk(data));
    this.settleIfComplete(chunk.partition);
  }

  private settleIfComplete(index: number): void {
    const pieces = this.pending[index];
    const part = this.partitions[index] as DmgPartition;
    if (pieces === undefined || pieces.size < part.checksummed.length) return;
    let crc = 0;
    part.checksummed.forEach((chunk, sequence) => {
      crc = crc32Combine(crc, pieces.get(sequence) as number, chunk.length);
    });
    this.pending[index] = undefined;
    if (crc !== part.checksum) {
      const failure = new SbmError(
        'SBM_CORRUPT',
        `${this.path}: UDIF checksum of blkx "${part.name}" does not match its data (stored ${hex(part.checksum)}, read ${hex(crc)})`,
        { path: this.path },
      );
      this.failures.set(index, failure);
      throw failure;
    }
    this.verifiedCount++;
  }
}
