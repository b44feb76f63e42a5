// A backup set is DEST/<disk name>/ holding complete bundles named by the UTC time of their
// frozen point: 2026-11-23-091500.sparsebundle (a "-2", "-3" suffix when two share a second).
// A backup is built as <name>.inProgress and renamed when durable, so a listing of
// *.sparsebundle only ever shows complete backups. `.lock` serialises runs on one set.

import { mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fsExt } from '../fs/fs-ext.js';
import { SbmError } from '../errors.js';

export const BACKUP_SUFFIX = '.sparsebundle';
export const IN_PROGRESS_SUFFIX = '.inProgress';
const NAME_PATTERN = /^(\d{4})-(\d{2})-(\d{2})-(\d{2})(\d{2})(\d{2})(?:-(\d+))?$/;

export interface BackupEntry {
  readonly name: string;
  readonly path: string;
  readonly time: Date;
}

export function backupStem(time: Date): string {
  const pad = (value: number) => String(value).padStart(2, '0');
  return (
    `${time.getUTCFullYear()}-${pad(time.getUTCMonth() + 1)}-${pad(time.getUTCDate())}-` +
    `${pad(time.getUTCHours())}${pad(time.getUTCMinutes())}${pad(time.getUTCSeconds())}`
  );
}

export function parseBackupName(name: string): Date | undefined {
  if (!name.endsWith(BACKUP_SUFFIX)) return undefined;
  const match = NAME_PATTERN.exec(name.slice(0, -BACKUP_SUFFIX.length));
  if (match === null) return undefined;
  const [, year, month, day, hour, minute, second] = match.map(Number);
  return new Date(Date.UTC(year ?? 0, (month ?? 1) - 1, day ?? 1, hour ?? 0, minute ?? 0, second ?? 0));
}

/** Complete backups of a set, oldest first. */
export async function listBackups(setDir: string): Promise<BackupEntry[]> {
  const names = await readdir(setDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const entries: BackupEntry[] = [];
  for (const name of names) {
    const time = parseBackupName(name);
    if (time !== undefined) entries.push({ name, path: join(setDir, name), time });
  }
  // Names sort by time; the numeric suffix orders backups taken in the same second.
  return entries.sort((a, b) => a.time.getTime() - b.time.getTime() || suffixOf(a.name) - suffixOf(b.name));
}

function suffixOf(name: string): number {
  return Number(NAME_PATTERN.exec(name.slice(0, -BACKUP_SUFFIX.length))?.[7] ?? 1);
}

/** A name for a backup taken at `time` that no complete or in-progress backup uses. */
export async function freeBackupStem(setDir: string, time: Date): Promise<string> {
  const base = backupStem(time);
  for (let counter = 1; ; counter++) {
    const stem = counter === 1 ? base : `${base}-${counter}`;
    const taken = await Promise.all(
      [BACKUP_SUFFIX, IN_PROGRESS_SUFFIX].map((suffix) => stat(join(setDir, stem + suffix)).then(() => true, () => false)),
    );
    if (!taken.includes(true)) return stem;
  }
}

/** Removes in-progress builds left by interrupted runs (they never look complete). */
export async function discardInterrupted(setDir: string): Promise<string[]> {
  const names = (await readdir(setDir)).filter((name) => name.endsWith(IN_PROGRESS_SUFFIX) || name.startsWith('.deleting-'));
  for (const name of names) await rm(join(setDir, name), { recursive: true, force: true });
  return names;
}

/** Exclusive, non-blocking lock on the set, held for a whole backup or thinning run. */
export async function lockBackupSet(setDir: string): Promise<{ release(): Promise<void> }> {
  await mkdir(setDir, { recursive: true });
  const handle: FileHandle = await open(join(setDir, '.lock'), 'a+');
  try {
    fsExt().flockSync(handle.fd, 'exnb');
  } catch (error) {
    await handle.close();
    const errno = (error as NodeJS.ErrnoException).code;
    if (errno === 'EWOULDBLOCK' || errno === 'EAGAIN') {
      throw new SbmError('SBM_LOCKED', `backup set ${setDir} is in use by another sbm run`, { path: setDir });
    }
    if (errno !== 'ENOTSUP' && errno !== 'EOPNOTSUPP') throw error;
  }
  return { release: () => handle.close() };
}
