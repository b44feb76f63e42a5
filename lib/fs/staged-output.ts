// Builds an output (file or bundle folder) under a temporary sibling name and renames it into
// place only when complete, so an interrupted or failed run never leaves a half output under the
// final name, and an existing output is replaced only with `force`.
//
//   1. build     .NAME.sbm-partial-<pid>-<rand>       (removed on error or SIGINT/SIGTERM)
//   2. if force  rename NAME -> .NAME.sbm-replaced-*   (old output kept until the new one is in,
//                and renamed back if the new one cannot be)
//   3. rename    .NAME.sbm-partial-* -> NAME, fsync the parent folder
//   4. remove    .NAME.sbm-replaced-*
//
// A signal during steps 2-4 waits for them: stopping between the two renames would leave no
// output under NAME. The command then exits 130 with its output complete.

import { lstat, rename, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomTag } from './temp-name.js';
import { SbmError, fromSystemError } from '../errors.js';
import { fsyncDirectory } from './atomic-write.js';
import { assertNotBackup } from './backup-guard.js';
import { isNoSpace, noSpaceOrSystemError } from './no-space.js';

export interface StagedOutputOptions {
  readonly force?: boolean;
  /** Called before replacing an existing output, e.g. to check it is not in use. */
  readonly beforeReplace?: (existingPath: string) => Promise<void>;
}

export async function withStagedOutput<T>(
  finalPath: string,
  options: StagedOutputOptions,
  build: (stagingPath: string) => Promise<T>,
): Promise<T> {
  const exists = await pathExists(finalPath);
  if (exists && options.force !== true) {
    throw new SbmError('SBM_EXISTS', `${finalPath} already exists (use --force to replace it)`, { path: finalPath });
  }
  // --force never replaces a backup, and no output goes inside one.
  await assertNotBackup(finalPath, exists ? 'replace a backup' : 'write inside a backup');
  const parent = dirname(finalPath);
  const tag = `${process.pid}-${randomTag(8)}`;
  const stagingPath = join(parent, `.${basename(finalPath)}.sbm-partial-${tag}`);
  const removeStaging = (): void => rmSync(stagingPath, { recursive: true, force: true });
  let committing = false;
  let deferredSignal: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (committing) {
      deferredSignal ??= signal;
      return;
    }
    removeStaging();
    process.stderr.write(`sbm: SBM_INTERRUPTED: ${signal} received; removed the partial ${finalPath}\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await build(stagingPath);
    if (exists) {
      await options.beforeReplace?.(finalPath);
      const replaced = join(parent, `.${basename(finalPath)}.sbm-replaced-${tag}`);
      committing = true;
      await rename(finalPath, replaced);
      try {
        await rename(stagingPath, finalPath);
      } catch (error) {
        await rename(replaced, finalPath).catch(() => undefined); // the old output goes back under its name
        throw error;
      }
      await fsyncDirectory(parent);
      await rm(replaced, { recursive: true, force: true });
    } else {
      committing = true;
      await rename(stagingPath, finalPath);
      await fsyncDirectory(parent);
    }
    if (deferredSignal !== undefined) {
      process.stderr.write(`sbm: SBM_INTERRUPTED: ${deferredSignal} received while ${finalPath} was put in place; it is complete\n`);
      process.exit(130);
    }
    return result;
  } catch (error) {
    removeStaging();
    // A full filesystem says so (SBM_NO_SPACE) even when a lower layer wrapped the ENOSPC as SBM_IO.
    throw isNoSpace(error)
      ? noSpaceOrSystemError(error, 'cannot write', finalPath)
      : error instanceof SbmError
        ? error
        : fromSystemError(error, 'cannot write output', finalPath);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

async function pathExists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
