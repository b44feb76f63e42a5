// Constants of sbm's change tracker: file names under .sbm/, magics (hex, ASCII in comments) and
// the tuning knobs that trade audit cost against coverage.

/** .sbm/state: bundle identity, tracking epoch, current generation (JSON, atomic replace). */
export const STATE_FILE = 'state';
/** .sbm/changes.log: fixed-size checksummed change records, append + fdatasync. */
export const CHANGE_LOG_FILE = 'changes.log';
/** .sbm/stat-cache: header + one slot per band index with the stat sbm last recorded. */
export const STAT_CACHE_FILE = 'stat-cache';
export const STATE_FORMAT = 1;

export const CHANGE_RECORD_MAGIC = 0x434d4253; // "SBMC" read little-endian
export const CHANGE_RECORD_SIZE = 32;
export const CHANGE_KIND_WRITE = 1; // sbm changed the band (write, zero, trim, delete, revert)
export const CHANGE_KIND_FOREIGN = 2; // the audit found a change made behind sbm's back

export const STAT_CACHE_MAGIC = 0x534d4253; // "SBMS" read little-endian
export const STAT_CACHE_VERSION = 1;
export const STAT_CACHE_HEADER_SIZE = 64;
/** Header flag: logTrustedBytes/logTrustedCrc name a verified, fully stamped prefix of changes.log. */
export const STAT_CACHE_FLAG_LOG_TRUSTED = 0x1;
/** Header flag: presentBands holds the number of slots saying "present". */
export const STAT_CACHE_FLAG_PRESENT_COUNT = 0x2;
export const STAT_SLOT_SIZE = 48;
export const SLOT_UNKNOWN = 0;
export const SLOT_PRESENT = 1;
export const SLOT_ABSENT = 2;

/** Token text: sbm1:<bundle uuid>:<epoch id, 8 hex>:<generation>. */
export const TOKEN_PREFIX = 'sbm1';

/** `auto` audits stat every band when at most this many are present: few enough that a stat per band stays a short pause. */
export const AUTO_FULL_AUDIT_MAX_BANDS = 4096;
/** Compaction on open once the log holds this many records and 4x more than distinct bands. */
export const COMPACT_MIN_RECORDS = 8192;
/** Generation start times kept for `--since <ISO time>`. */
export const GENERATION_TIMES_KEPT = 4096;
