// withStagedOutput: the output appears under its name only when complete, a signal never leaves
// the name empty, and a failed replace puts the old output back. Signals are emitted in-process
// with process.exit stubbed, so the test worker survives them; the tests run one at a time, as
// they share the process's signal listeners and its exit.

import test from 'ava';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SbmError } from '../../../lib/errors.js';
import { withStagedOutput } from '../../../lib/fs/staged-output.js';
import { tempDir } from '../../helpers/tools.js';

class ExitCalled extends Error {
  constructor(readonly code: number | undefined) {
    super(`process.exit(${code})`);
  }
}

/** Runs `body` with process.exit throwing ExitCalled and stderr collected. */
async function withStubbedExit<T>(
  body: () => Promise<T>,
): Promise<{ outcome: T | Error; stderr: string; exits: Array<number | undefined> }> {
  const exit = process.exit;
  const write = process.stderr.write;
  const exits: Array<number | undefined> = [];
  let stderr = '';
  process.exit = ((code?: number) => {
    exits.push(code);
    throw new ExitCalled(code);
  }) as typeof process.exit;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const outcome = await body().catch((error: unknown) => error as Error);
    return { outcome, stderr, exits };
  } finally {
    process.exit = exit;
    process.stderr.write = write;
  }
}

async function oldOutput(dir: string): Promise<string> {
  const target = join(dir, 'out.sparsebundle');
  await mkdir(target);
  await writeFile(join(target, 'Info.plist'), 'old');
  return target;
}

test.serial('a signal while the new output replaces the old waits for the renames: the output is complete, then exit 130', async (t) => {
  const dir = await tempDir(t);
  const target = await oldOutput(dir);
  const { exits, stderr } = await withStubbedExit(() =>
    withStagedOutput(target, { force: true, beforeReplace: async () => undefined }, async (staging) => {
      await mkdir(staging);
      await writeFile(join(staging, 'Info.plist'), 'new');
      setImmediate(() => process.emit('SIGINT', 'SIGINT')); // lands after the first rename started
    }),
  );
  t.deepEqual(exits, [130]);
  t.regex(stderr, /SBM_INTERRUPTED: SIGINT received while .*out\.sparsebundle was put in place; it is complete/);
  t.is(await readFile(join(target, 'Info.plist'), 'utf8'), 'new');
  t.deepEqual(await readdir(dir), ['out.sparsebundle'], 'no partial or replaced folder is left');
});

test.serial('a signal while building removes the partial output and leaves the old one alone', async (t) => {
  const dir = await tempDir(t);
  const target = await oldOutput(dir);
  const { exits, stderr } = await withStubbedExit(() =>
    withStagedOutput(target, { force: true }, async (staging) => {
      await mkdir(staging);
      process.emit('SIGINT', 'SIGINT');
    }),
  );
  t.deepEqual(exits, [130]);
  t.regex(stderr, /SBM_INTERRUPTED: SIGINT received; removed the partial/);
  t.is(await readFile(join(target, 'Info.plist'), 'utf8'), 'old');
  t.deepEqual(await readdir(dir), ['out.sparsebundle']);
});

test.serial('when the new output cannot be renamed into place, the old one goes back under its name', async (t) => {
  const dir = await tempDir(t);
  const target = await oldOutput(dir);
  // The build leaves nothing at its staging path, so the second rename fails.
  await t.throwsAsync(withStagedOutput(target, { force: true }, async () => undefined));
  t.is(await readFile(join(target, 'Info.plist'), 'utf8'), 'old');
  t.deepEqual(await readdir(dir), ['out.sparsebundle']);
});

test.serial(
  'a build that runs out of space fails with SBM_NO_SPACE and leaves nothing, even when a lower layer wrapped the ENOSPC',
  async (t) => {
    const dir = await tempDir(t);
    const target = join(dir, 'out.sparsebundle');
    const failures = [
      Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }),
      new SbmError('SBM_IO', 'write failed in x: ENOSPC: no space left on device', { errno: 'ENOSPC' }),
    ];
    for (const failure of failures) {
      await t.throwsAsync(
        withStagedOutput(target, {}, async (staging) => {
          await mkdir(staging);
          await writeFile(join(staging, 'half'), 'partial');
          throw failure;
        }),
        { message: /^SBM_NO_SPACE: cannot write .*out\.sparsebundle: no space left on its filesystem; the partial output was removed$/ },
      );
      t.deepEqual(await readdir(dir), []);
    }
  },
);
