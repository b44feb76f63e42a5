// LogIndex: the highest generation recorded per band in changes.log, built only as far as a
// question needs it. The log's first part, verified before the stat cache last named it (the
// cache's trusted log point), stays raw bytes:
//
//   prefix   records [0, trusted): "which bands changed after generation G" is one pass reading
//            two fields per record, no per-band objects; a per-band question (an audit) indexes
//            it into a Map once
//   recent   Map of the records after the prefix, plus those appended since open
//
// For 20,000 logged bands this keeps `sbm changed-bands` from building a 20,000-entry Map (and
// checking 20,000 record checksums) to answer with the 10 bands that changed.

import { readRecordBandIndex, readRecordGeneration } from './change-record.js';
import { CHANGE_RECORD_SIZE } from './constants.js';

/** Records `generation` for the band unless a higher one is already there. */
export function keepHighest(map: Map<number, number>, bandIndex: number, generation: number): void {
  const known = map.get(bandIndex);
  if (known === undefined || known < generation) map.set(bandIndex, generation);
}

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
    keepHighest(this.recent, bandIndex, generation);
  }

  /** Bands with a record in a generation above `generation`, in ascending order. */
  bandsNewerThan(generation: number): number[] {
    const found = new Set<number>();
    for (const [bandIndex, latest] of this.recent) if (latest > generation) found.add(bandIndex);
    const prefix = this.prefix;
    if (this.prefixMap !== undefined) {
      for (const [bandIndex, latest] of this.prefixMap) if (latest > generation) found.add(bandIndex);
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
    for (const [bandIndex, generation] of this.recent) keepHighest(merged, bandIndex, generation);
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
        keepHighest(map, readRecordBandIndex(prefix, offset), readRecordGeneration(prefix, offset));
      }
      this.prefixMap = map;
    }
    return this.prefixMap;
  }
}
