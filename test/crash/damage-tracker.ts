// Damage to the tracker's own files between crash rounds (after the SIGKILL, before the next
// open): what a user, a restore tool or a broken disk may do to `.sbm/`. The tracker must then
// still never under-report; refusing old tokens (a new epoch, exit 10) is allowed.

import { copyFile, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const LOG = 'changes.log';
const CACHE = 'stat-cache';

export const DAMAGE_KINDS = [
  'log deleted',
  'log truncated to 0',
  'log zeroed',
  'log rolled back',
  'stat cache deleted',
  'stat cache truncated to 0',
  'stat cache zeroed',
  'stat cache rolled back',
  'stat cache slots lost',
] as const;
export type DamageKind = (typeof DAMAGE_KINDS)[number];

/** Keeps copies of the tracker files (taken after a clean close) for later rollbacks. */
export async function keepTrackerCopies(bundlePath: string, copiesDir: string): Promise<void> {
  for (const name of [LOG, CACHE]) await copyFile(join(bundlePath, '.sbm', name), join(copiesDir, name)).catch(() => undefined);
}

export async function damageTracker(bundlePath: string, copiesDir: string, kind: DamageKind): Promise<void> {
  const sbm = join(bundlePath, '.sbm');
  const file = join(sbm, kind.startsWith('log') ? LOG : CACHE);
  if (kind.endsWith('deleted')) return rm(file, { force: true });
  if (kind.endsWith('truncated to 0')) return truncate(file, 0);
  if (kind.endsWith('zeroed')) return writeFile(file, Buffer.alloc((await readFile(file)).length));
  if (kind.endsWith('rolled back')) return copyFile(join(copiesDir, kind.startsWith('log') ? LOG : CACHE), file);
  return truncate(file, 64); // the stat cache's header only
}
