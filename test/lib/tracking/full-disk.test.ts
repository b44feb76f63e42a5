// The tracker on a 100% full filesystem (a small tmpfs; CI runs as root): a trim, the one
// operation that frees space, still works, and `changed-bands` answers or fails with
// SBM_NO_SPACE (exit 1), never SBM_INTERNAL. CLI tests: `npm run build` first.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { join } from 'node:path';
import { mkdir, open, rm } from 'node:fs/promises';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { RESERVE_FILE } from '../../../lib/tracking/tracking-file.js';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';

const MiB = 1024 * 1024;

async function smallFilesystem(t: ExecutionContext): Promise<string> {
  await requireTool(t, 'mount');
  const mountPoint = join(await tempDir(t), 'small');
  await mkdir(mountPoint);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint]);
  t.teardown(() => execa('umount', [mountPoint]).then(() => undefined));
  return mountPoint;
}

/** Writes into `path` until the filesystem refuses even 4 KiB more. */
async function fill(path: string): Promise<void> {
  const handle = await open(path, 'a');
  try {
    for (const chunk of [64 * 1024, 4096, 512]) {
      const bytes = Buffer.alloc(chunk, 0xaa);
      for (;;) {
        try {
          await handle.write(bytes);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
          break;
        }
      }
    }
  } finally {
    await handle.close();
  }
}

async function bundleWithToken(mountPoint: string): Promise<{ path: string; token: string }> {
  const path = join(mountPoint, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 8 * MiB, bandSizeBytes: MiB });
  for (let band = 0; band < 4; band++) await bundle.write(band * MiB, Buffer.alloc(64 * 1024, band + 1));
  const token = await new BundleSession(bundle).token();
  await bundle.close();
  return { path, token };
}

test('a trim works on a 100% full filesystem, with the reserve and without it, and is reported', async (t) => {
  const mountPoint = await smallFilesystem(t);
  const { path, token } = await bundleWithToken(mountPoint);
  // With the reserve in place (the normal case).
  await fill(join(mountPoint, 'filler-1'));
  let bundle = await SparseBundle.open(path);
  await bundle.trim(2 * MiB, MiB);
  await bundle.close();
  // Without any reserve left: the state rewrite fails, the trim must not.
  await rm(join(path, '.sbm', RESERVE_FILE), { force: true });
  await fill(join(mountPoint, 'filler-2'));
  bundle = await SparseBundle.open(path);
  await bundle.trim(1 * MiB, MiB);
  await bundle.close();
  await rm(join(mountPoint, 'filler-1'));
  await rm(join(mountPoint, 'filler-2'));
  bundle = await SparseBundle.open(path);
  t.teardown(() => bundle.close());
  const report = await new BundleSession(bundle).changedBands(token);
  t.deepEqual(
    report.bands.filter((band) => band.deleted).map((band) => band.bandIndex),
    [1, 2],
  );
});

test('changed-bands with 0 bytes free answers, or fails with SBM_NO_SPACE (exit 1), never SBM_INTERNAL', async (t) => {
  const mountPoint = await smallFilesystem(t);
  const { path, token } = await bundleWithToken(mountPoint);
  const bundle = await SparseBundle.open(path);
  await bundle.write(3 * MiB, Buffer.from('three'));
  await bundle.close();
  await fill(join(mountPoint, 'filler-1'));
  // The reserve makes room for the new token: the question is answered.
  const answered = await runSbm(['changed-bands', path, '--since', token, '--relative']);
  t.is(answered.exitCode, 0, answered.stderr);
  t.is(answered.stdout, 'bands/3\n');
  // No reserve left and still full: one clear line, exit 1.
  await fill(join(mountPoint, 'filler-2'));
  const refused = await runSbm(['changed-bands', path, '--since', token, '--relative']);
  t.not(refused.exitCode, 70, refused.stderr);
  if (refused.exitCode !== 0) {
    t.is(refused.exitCode, 1);
    t.regex(refused.stderr, /^sbm: SBM_NO_SPACE: /);
  }
  // Space back: the same token still works (nothing was half-written).
  await rm(join(mountPoint, 'filler-1'));
  await rm(join(mountPoint, 'filler-2'));
  const again = await runSbm(['changed-bands', path, '--since', token, '--relative']);
  t.is(again.exitCode, 0, again.stderr);
  t.is(again.stdout, 'bands/3\n');
});

test('--token-file on a full filesystem is SBM_NO_SPACE (exit 1), and the --since token stays valid', async (t) => {
  const { path, token } = await bundleWithToken(await tempDir(t));
  const bundle = await SparseBundle.open(path);
  await bundle.write(3 * MiB, Buffer.from('three'));
  await bundle.close();
  const full = await runSbm(['changed-bands', path, '--since', token, '--relative', '--token-file', '/dev/full']);
  t.is(full.exitCode, 1, full.stderr);
  t.regex(full.stderr, /^sbm: SBM_NO_SPACE: cannot write the next token/);
  const again = await runSbm(['changed-bands', path, '--since', token, '--relative']);
  t.is(again.exitCode, 0, again.stderr);
  t.is(again.stdout, 'bands/3\n');
});
