// A backup set is DEST/<disk name>/ holding complete bundles named by the UTC time of their
// frozen point: 2026-11-23-091500.sparsebundle (a "-2", "-3" suffix when two share a second).
// A backup is built as <name>.inProgress and renamed when durable, so a listing of
// *.sparsebundle only ever shows complete backups. `.lock` serialises runs on one set.
//
// A destination may hold folders sbm did not make, with any names. sbm counts and removes only
// what carries its proof: a backup is a folder with `.sbm/manifest.json` (written last, before
// the rename); an in-progress build is a folder whose first content was `.sbm/in-progress.json`
// naming that folder. Anything else is left alone, and the caller is told so.

import { lstat, mkdir, open, readFile, readdir, rm, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fsyncDirectory, writeNewFileDurably } from '../fs/atomic-write.js';
import { fsExt } from '../fs/fs-ext.js';
import { randomTag } from '../fs/temp-name.js';
import { SbmError } from '../errors.js';
import { MANIFEST_RELATIVE_PATH } from './backup-manifest.js';

export const BACKUP_SUFFIX = '.sparsebundle';
export const IN_PROGRESS_SUFFIX = '.inProgress';
/** Written into an in-progress build before anything else: the proof that sbm made the folder. */
export const IN_PROGRESS_MARKER = join('.sbm', 'in-progress.json');
/** Prefix of a backup thinning renamed away before removing it. */
export const DELETING_PREFIX = '.deleting-';
const MARKER_KIND = 'sbm-backup-in-progress';
const MARKER_MAX_BYTES = 64 * 1024;
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
    // A folder that only looks like a backup is not one: without its manifest sbm did not finish it.
    if (time !== undefined && (await hasManifest(join(setDir, name)))) entries.push({ name, path: join(setDir, name), time });
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
      [BACKUP_SUFFIX, IN_PROGRESS_SUFFIX].map((suffix) =>
        lstat(join(setDir, stem + suffix)).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (!taken.includes(true)) return stem;
  }
}

/** True when `path` is a real folder (not a symlink) holding a manifest file. */
export async function hasManifest(path: string): Promise<boolean> {
  return (await isRealDirectory(path)) && (await isRegularFile(join(path, MANIFEST_RELATIVE_PATH)));
}

export interface BuildIdentity {
  readonly source: string;
  readonly startedAt: Date;
}

/**
 * Creates `<stem>.inProgress` (exclusively: never an existing folder) and, before anything else
 * goes into it, its marker naming the folder and the run, made durable. Only a folder with that
 * marker is ever removed by a later run.
 */
export async function claimBuildFolder(setDir: string, stem: string, identity: BuildIdentity): Promise<string> {
  const name = stem + IN_PROGRESS_SUFFIX;
  const building = join(setDir, name);
  await mkdir(building);
  try {
    await mkdir(join(building, '.sbm'));
    const marker = {
      kind: MARKER_KIND,
      version: 1,
      folder: name,
      runId: randomTag(16),
      source: identity.source,
      startedAt: identity.startedAt.toISOString(),
      host: hostname(),
      pid: process.pid,
    };
    await writeNewFileDurably(join(building, IN_PROGRESS_MARKER), Buffer.from(`${JSON.stringify(marker)}\n`));
    await Promise.all([fsyncDirectory(join(building, '.sbm')), fsyncDirectory(building)]);
  } catch (error) {
    await rm(building, { recursive: true, force: true }); // made by this call a moment ago
    throw error;
  }
  return building;
}

export interface DiscardResult {
  /** Interrupted builds and half-deleted backups removed (each carried sbm's proof). */
  readonly removed: string[];
  /** Folders named like them that carry no proof that sbm made them: not touched. */
  readonly leftAlone: string[];
}

/** Removes in-progress builds of interrupted runs and backups a thinning run was deleting. */
export async function discardInterrupted(setDir: string): Promise<DiscardResult> {
  const names = (await readdir(setDir)).filter((name) => name.endsWith(IN_PROGRESS_SUFFIX) || name.startsWith(DELETING_PREFIX));
  const result: DiscardResult = { removed: [], leftAlone: [] };
  for (const name of names) {
    const path = join(setDir, name);
    // A backup being deleted was complete (thinning renames only backups with a manifest).
    const ours = name.startsWith(DELETING_PREFIX) ? await hasManifest(path) : await hasBuildMarker(path, name);
    if (!ours) {
      result.leftAlone.push(name);
      continue;
    }
    await rm(path, { recursive: true, force: true });
    result.removed.push(name);
  }
  return result;
}

/** True when `path` is a real folder whose marker is sbm's and names `folder` (the folder's own name). */
async function hasBuildMarker(path: string, folder: string): Promise<boolean> {
  const markerPath = join(path, IN_PROGRESS_MARKER);
  if (!(await isRealDirectory(path)) || !(await isRegularFile(markerPath, MARKER_MAX_BYTES))) return false;
  try {
    const marker = JSON.parse(await readFile(markerPath, 'utf8')) as { kind?: unknown; folder?: unknown };
    return marker.kind === MARKER_KIND && marker.folder === folder;
  } catch {
    return false; // unreadable or not JSON: not provably ours, so it stays
  }
}

async function isRealDirectory(path: string): Promise<boolean> {
  const info = await lstat(path).catch(() => undefined);
  return info?.isDirectory() === true;
}

async function isRegularFile(path: string, maxBytes = Number.MAX_SAFE_INTEGER): Promise<boolean> {
  const info = await lstat(path).catch(() => undefined);
  return info?.isFile() === true && info.size <= maxBytes;
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
