// A full filesystem (a small tmpfs filled up): creating a bundle fails with SBM_NO_SPACE and leaves
// nothing behind, and a band write that runs out of space leaves no band file.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { runSbm, requireTool, seededBytes, tempDir } from '../../helpers/tools.js';

const MIB = 1024 * 1024;

async function smallTmpfs(t: ExecutionContext, size: string): Promise<string> {
  await requireTool(t, 'mount');
  const dir = await tempDir(t);
  const mountPoint = join(dir, 'small');
  await mkdir(mountPoint);
  await execa('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mountPoint]);
  t.teardown(() => execa('umount', [mountPoint]).then(() => undefined));
  return mountPoint;
}

/** Writes `path` until the filesystem refuses another byte. */
async function fillUp(path: string): Promise<void> {
  const handle = await open(path, 'a');
  try {
    for (const chunk of [Buffer.alloc(256 * 1024, 1), Buffer.alloc(4096, 1), Buffer.alloc(1, 1)]) {
      for (;;) {
        try {
          await handle.write(chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw error;
        }
      }
    }
  } finally {
    await handle.close();
  }
}

test.serial('create on a full filesystem fails with SBM_NO_SPACE, leaves nothing, and a retry works once there is room', async (t) => {
  const mountPoint = await smallTmpfs(t, '1m');
  const filler = join(mountPoint, 'filler');
  await fillUp(filler);
  const path = join(mountPoint, 'vm.sparsebundle');
  await t.throwsAsync(SparseBundle.create(path, { sizeBytes: 64 * MIB }), {
    message: /^SBM_NO_SPACE: cannot create bundle .*vm\.sparsebundle: no space left/,
  });
  t.deepEqual(await readdir(mountPoint), ['filler']);
  await rm(filler);
  const bundle = await SparseBundle.create(path, { sizeBytes: 64 * MIB });
  await bundle.close();
  t.true((await readdir(path)).includes('Info.plist'));
});

test.serial('sbm create on a full filesystem exits with SBM_NO_SPACE and leaves no partial bundle', async (t) => {
  const mountPoint = await smallTmpfs(t, '1m');
  const filler = join(mountPoint, 'filler');
  await fillUp(filler);
  const path = join(mountPoint, 'vm.sparsebundle');
  const result = await runSbm(['create', path, '--size', '64M']);
  t.is(result.exitCode, 1, result.stderr);
  t.regex(result.stderr, /^sbm: SBM_NO_SPACE: /);
  t.deepEqual(await readdir(mountPoint), ['filler'], 'neither the bundle nor a staging folder is left');
  await rm(filler);
  const retry = await runSbm(['create', path, '--size', '64M']);
  t.is(retry.exitCode, 0, retry.stderr);
});

test.serial('a band write that runs out of space leaves no band file; the band still reads as zeros', async (t) => {
  const mountPoint = await smallTmpfs(t, '4m');
  const path = join(mountPoint, 'vm.sparsebundle');
  const created = await SparseBundle.create(path, { sizeBytes: 16 * MIB, bandSizeBytes: MIB });
  await created.write(0, seededBytes(4096, 1));
  await created.close();
  const filler = join(mountPoint, 'filler');
  await fillUp(filler);
  // Untracked: the point is the band file, not the change log's own room.
  const bundle = await SparseBundle.open(path, { untracked: true });
  try {
    const failed = await t.throwsAsync(bundle.write(3 * MIB, seededBytes(MIB, 2)));
    t.is((failed as { data?: { errno?: string } } | undefined)?.data?.errno, 'ENOSPC');
    t.deepEqual(await readdir(join(path, 'bands')), ['0'], 'no empty or partial band 3 is left');
    t.deepEqual(bundle.bandsPresent(), [0]);
    t.true((await bundle.read(3 * MIB, MIB)).equals(Buffer.alloc(MIB)));
    await rm(filler);
    await bundle.write(3 * MIB, seededBytes(MIB, 2));
    t.true((await bundle.read(3 * MIB, MIB)).equals(seededBytes(MIB, 2)));
  } finally {
    await bundle.close();
  }
});
