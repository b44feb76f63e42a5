// LogIndex: the highest generation recorded per band in changes.log, built only as far as a
// question needs it. The log's first part, verified by an earlier session (see the stat cache's
// trusted log point), stays raw bytes:
//
//   prefix   records [0, trusted): "which bands changed after generation G" is one pass reading
//            two fields per record, no per-band objects; a per-band question (an audit) indexes
//            it into a Map once
//   recent   Map of the records after the prefix, plus those appended since open
//
// For 20,000 logged bands this keeps `sbm changed-bands` from building a 20,000-entry Map (and
// checking 20,000 record checksums) to answer with the 10 bands that changed.

import { endianness } from 'node:os';
import { CHANGE_RECORD, readRecordBandIndex, readRecordGeneration } from './change-record.js';
import { CHANGE_RECORD_SIZE } from './constants.js';

// Word positions of the u64 fields, for reading the prefix as 32-bit words (little-endian hosts).
const RECORD_WORDS = CHANGE_RECORD_SIZE / 4;
const GENERATION_WORD = CHANGE_RECORD.offsetOf('generation') / 4;
const BAND_WORD = CHANGE_RECORD.offsetOf('bandIndex') / 4;
const LITTLE_ENDIAN_HOST = endianness() === 'LE';
const TWO_TO_32 = 0x1_0000_0000;

export class LogIndex {
  private prefixMap: Map<number, number> | undefined;

  /** `prefix` holds whole, valid records of this epoch only (verified by the caller). */
  constructor(
    private readonly prefix: Buffer,
    private readonly recent: Map<number, number>,
  ) {}

  /** Bands with records after the prefix (and since open), with their highest generation. */
  get recentEntries(): ReadonlyMap<number, number> {
    return this.recent;
  }

  /** Highest generation recorded for the band, if any (indexes the prefix on first use). */
  latestOf(bandIndex: number): number | undefined {
    const recent = this.recent.get(bandIndex);
    const old = this.prefix.length === 0 ? undefined : this.indexedPrefix().get(bandIndex);
    if (recent === undefined) return old;
    return old === undefined || old < recent ? recent : old;
  }

  /** A record (band, generation) became durable. */
  note(bandIndex: number, generation: number): void {
    const known = this.recent.get(bandIndex);
    if (known === undefined || known < generation) this.recent.set(bandIndex, generation);
  }

  /** Bands with a record in a generation above `generation`, in ascending order. */
  bandsNewerThan(generation: number): number[] {
    const found = new Set<number>();
    for (const [bandIndex, latest] of this.recent) if (latest > generation) found.add(bandIndex);
    const prefix = this.prefix;
    if (this.prefixMap !== undefined) {
      for (const [bandIndex, latest] of this.prefixMap) if (latest > generation) found.add(bandIndex);
    } else if (LITTLE_ENDIAN_HOST && prefix.byteOffset % 4 === 0) {
      // The prefix was verified when it was first scanned (every u64 below 2^53), so two aligned
      // 32-bit loads per field are exact; this loop runs once per open, mostly unoptimised.
      const words = new Uint32Array(prefix.buffer, prefix.byteOffset, prefix.length / 4);
      for (let word = 0; word + RECORD_WORDS <= words.length; word += RECORD_WORDS) {
        const recorded = (words[word + GENERATION_WORD + 1] as number) * TWO_TO_32 + (words[word + GENERATION_WORD] as number);
        if (recorded > generation) found.add((words[word + BAND_WORD + 1] as number) * TWO_TO_32 + (words[word + BAND_WORD] as number));
      }
    } else {
      for (let offset = 0; offset + CHANGE_RECORD_SIZE <= prefix.length; offset += CHANGE_RECORD_SIZE) {
        if (readRecordGeneration(prefix, offset) > generation) found.add(readRecordBandIndex(prefix, offset));
      }
    }
    return [...found].sort((a, b) => a - b);
  }

  /** Every band with its highest generation (indexes the prefix). */
  all(): Map<number, number> {
    const merged = new Map(this.prefix.length === 0 ? [] : this.indexedPrefix());
    for (const [bandIndex, generation] of this.recent) {
      const known = merged.get(bandIndex);
      if (known === undefined || known < generation) merged.set(bandIndex, generation);
    }
    return merged;
  }

  /** Distinct bands in the log when known without indexing the prefix, else undefined. */
  distinctBandsIfKnown(): number | undefined {
    if (this.prefix.length === 0) return this.recent.size;
    return this.prefixMap === undefined ? undefined : this.all().size;
  }

  private indexedPrefix(): Map<number, number> {
    if (this.prefixMap === undefined) {
      const map = new Map<number, number>();
      const prefix = this.prefix;
      for (let offset = 0; offset + CHANGE_RECORD_SIZE <= prefix.length; offset += CHANGE_RECORD_SIZE) {
        const bandIndex = readRecordBandIndex(prefix, offset);
        const generation = readRecordGeneration(prefix, offset);
        const known = map.get(bandIndex);
        if (known === undefined || known < generation) map.set(bandIndex, generation);
      }
      this.prefixMap = map;
    }
    return this.prefixMap;
  }
}
