// Thinning deletes whole backups only. Bands are hard links, so a band lives as long as any
// backup links it: deleting one backup never changes or breaks another.
//
// Policy (Time Machine's shape, with restic's names): keep the N newest backups, and the newest
// backup of each of the last N hours, days and weeks (UTC) and of each of the last N calendar
// months and years (UTC), always keep the newest backup, then, if --max-bytes is set, delete the oldest
// remaining backups until the set fits. A deletion renames the backup to .deleting-* first, so a
// crash mid-delete never leaves a half backup that looks complete. Only backups with a manifest
// count (listBackups): a folder that merely has a backup's name is never deleted. A dry run
// walks the same steps and deletes nothing.

import { lstat, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readdir } from 'node:fs/promises';
import { SbmError } from '../errors.js';
import { fsyncDirectory } from '../fs/atomic-write.js';
import { randomTag } from '../fs/temp-name.js';
import { type BackupEntry, DELETING_PREFIX, listBackups } from './backup-set.js';

export interface ThinPolicy {
  readonly keepLast?: number;
  readonly keepHourly?: number;
  readonly keepDaily?: number;
  readonly keepWeekly?: number;
  readonly keepMonthly?: number;
  readonly keepYearly?: number;
  readonly maxBytes?: number;
}

export interface ThinResult {
  readonly kept: string[];
  readonly deleted: string[];
  readonly bytesAfter: number;
}

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

/** Backups the time policy keeps (the newest always among them). */
export function selectKept(backups: readonly BackupEntry[], policy: ThinPolicy, now: Date): Set<string> {
  const kept = new Set<string>();
  const newest = backups.at(-1);
  if (newest === undefined) return kept;
  kept.add(newest.name);
  const { keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly } = policy;
  const counts = [keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly];
  if (counts.every((count) => count === undefined)) {
    for (const backup of backups) kept.add(backup.name);
    return kept;
  }
  const rules: Array<[number | undefined, number]> = [
    [keepHourly, HOUR],
    [keepDaily, DAY],
    [keepWeekly, WEEK],
  ];
  for (const [count, span] of rules) {
    if (count === undefined || count <= 0) continue;
    const buckets = new Map<number, BackupEntry>();
    for (const backup of backups) {
      const age = now.getTime() - backup.time.getTime();
      if (age >= count * span) continue;
      const bucket = Math.floor(backup.time.getTime() / span);
      buckets.set(bucket, backup); // oldest first, so the newest of each bucket wins
    }
    for (const backup of buckets.values()) kept.add(backup.name);
  }
  if (keepLast !== undefined) for (const backup of backups.slice(-keepLast)) kept.add(backup.name);
  keepCalendar(backups, keepMonthly, now, (time) => time.getUTCFullYear() * 12 + time.getUTCMonth(), kept);
  keepCalendar(backups, keepYearly, now, (time) => time.getUTCFullYear(), kept);
  return kept;
}

/**
 * Keeps the newest backup of each of the last `count` calendar periods (months or years, UTC),
 * the current one included: periods are calendar units, not 30- or 365-day spans, so
 * --keep-monthly 12 keeps one backup per month of the last year whatever the months' lengths.
 */
function keepCalendar(
  backups: readonly BackupEntry[],
  count: number | undefined,
  now: Date,
  periodOf: (time: Date) => number,
  kept: Set<string>,
): void {
  if (count === undefined || count <= 0) return;
  const newestPeriod = periodOf(now);
  const newestOfPeriod = new Map<number, BackupEntry>();
  for (const backup of backups) {
    const period = periodOf(backup.time);
    if (period > newestPeriod - count && period <= newestPeriod) newestOfPeriod.set(period, backup); // oldest first
  }
  for (const backup of newestOfPeriod.values()) kept.add(backup.name);
}

export interface ThinOptions {
  /** Work out what would be deleted (and the set's size after) without deleting anything. */
  readonly dryRun?: boolean;
}

/**
 * Rejects counts and sizes that are not whole non-negative numbers: NaN or -1 once read as
 * "no rule" or "keep nothing" and deleted backups.
 */
function assertPolicy(policy: ThinPolicy): void {
  for (const [key, value] of Object.entries(policy)) {
    const lowest = key === 'maxBytes' ? 0 : 1;
    if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) < lowest)) {
      throw new SbmError('SBM_INVALID_ARGUMENT', `thin policy ${key} must be a whole number of at least ${lowest}, not ${String(value)}`, {
        key,
      });
    }
  }
}

export async function thinBackups(setDir: string, policy: ThinPolicy, now = new Date(), options: ThinOptions = {}): Promise<ThinResult> {
  assertPolicy(policy);
  const remove = options.dryRun === true ? async () => undefined : deleteBackup;
  let backups = await listBackups(setDir);
  const kept = selectKept(backups, policy, now);
  const deleted: string[] = [];
  for (const backup of backups) {
    if (!kept.has(backup.name)) {
      await remove(setDir, backup);
      deleted.push(backup.name);
    }
  }
  backups = backups.filter((backup) => kept.has(backup.name));
  let bytes = await setBytes(backups);
  if (policy.maxBytes !== undefined) {
    while (bytes > policy.maxBytes && backups.length > 1) {
      const oldest = backups.shift() as BackupEntry;
      await remove(setDir, oldest);
      deleted.push(oldest.name);
      bytes = await setBytes(backups);
    }
  }
  return { kept: backups.map((backup) => backup.name), deleted, bytesAfter: bytes };
}

async function deleteBackup(setDir: string, backup: BackupEntry): Promise<void> {
  // A tag keeps the name free even beside a folder of that name someone else made.
  const doomed = join(setDir, `${DELETING_PREFIX}${backup.name}-${randomTag(8)}`);
  await rename(backup.path, doomed);
  await fsyncDirectory(setDir);
  await rm(doomed, { recursive: true, force: true });
}

/** Disk bytes of the set, counting each linked band file once. */
async function setBytes(backups: readonly BackupEntry[]): Promise<number> {
  const seen = new Set<string>();
  let bytes = 0;
  for (const backup of backups) {
    const bandsDir = join(backup.path, 'bands');
    // A backup whose bands/ is gone holds no band bytes (verify reports it).
    const names = await readdir(bandsDir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    for (const name of names) {
      const info = await lstat(join(bandsDir, name)); // a symlink counts as itself, not its target
      const key = `${info.dev}:${info.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      bytes += info.blocks * 512;
    }
  }
  return bytes;
}
