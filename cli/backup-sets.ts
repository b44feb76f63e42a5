// A path given to backups/thin/verify may be one set (DEST/NAME) or a destination holding sets.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { listBackups } from '../lib/backup/backup-set.js';
import { fromSystemError } from '../lib/errors.js';

export async function resolveSets(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true }).catch((error) => {
    throw fromSystemError(error, 'cannot read', path);
  });
  if ((await listBackups(path)).length > 0) return [path];
  const sets: string[] = [];
  for (const entry of entries) {
    if (entry.isDirectory() && (await listBackups(join(path, entry.name))).length > 0) sets.push(join(path, entry.name));
  }
  return sets.sort();
}
