// The whole stack a user would build: sbm serves a bundle, nbdfuse turns it into a file, a loop
// device turns that into a disk, and ext4 lives on it. Files written, unmounted, fsck'd clean,
// remounted and read back. Every mount, loop and FUSE is undone in teardown, pass or fail.

import test from 'ava';
import { execa } from 'execa';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { fuseMount } from '../../lib/nbd/fuse-mount.js';
import { requireTool, seededBytes } from '../helpers/tools.js';
import { MIB, recordingDevice, serveBundle } from '../lib/nbd/interop-kit.js';
import { BundleSession } from '../../lib/session/bundle-session.js';

const STEP = { timeout: 60_000 };

test('ext4 on a loop device on nbdfuse on sbm: write, fsck clean, remount, read back', async (t) => {
  for (const tool of ['nbdfuse', 'fusermount3', 'losetup', 'mkfs.ext4', 'e2fsck', 'mount', 'umount']) await requireTool(t, tool);
  let recorder: ReturnType<typeof recordingDevice> | undefined;
  let token = '';
  const served = await serveBundle(t, 256 * MIB, {
    prepare: async (bundle) => {
      token = await new BundleSession(bundle).token();
    },
    wrap: (bundle) => {
      recorder = recordingDevice(bundle);
      return recorder.device;
    },
  });
  const fuseDir = join(served.dir, 'fuse');
  const fsDir = join(served.dir, 'fs');
  await mkdir(fsDir);

  const fuse = await fuseMount({ mountDir: fuseDir, socketPath: served.server.socketPath, readOnly: false });
  t.teardown(() => fuse.unmount().catch(() => undefined));
  const loop = (await execa('losetup', ['-f', '--show', fuse.filePath], STEP)).stdout.trim();
  t.regex(loop, /^\/dev\/loop\d+$/);
  t.teardown(() => execa('losetup', ['-d', loop], { reject: false }).then(() => undefined));
  let mounted = false;
  t.teardown(async () => {
    if (mounted) await execa('umount', [fsDir], { reject: false });
  });

  await execa('mkfs.ext4', ['-q', '-F', '-E', 'discard', loop], STEP);
  await execa('mount', ['-o', 'discard', loop, fsDir], STEP);
  mounted = true;
  const files = [0, 1, 2, 3, 4].map((index) => ({
    name: `file-${index}.bin`,
    data: seededBytes((index + 1) * 700_000 + index, 100 + index),
  }));
  for (const file of files) await writeFile(join(fsDir, file.name), file.data);
  await mkdir(join(fsDir, 'dir'));
  await writeFile(join(fsDir, 'dir', 'note.txt'), 'served by sbm\n');
  await execa('sync', [], STEP);
  await execa('umount', [fsDir], STEP);
  mounted = false;

  const fsck = await execa('e2fsck', ['-fn', loop], { ...STEP, reject: false });
  t.is(fsck.exitCode, 0, fsck.stdout + fsck.stderr);

  await execa('mount', ['-o', 'ro', loop, fsDir], STEP);
  mounted = true;
  for (const file of files) t.true((await readFile(join(fsDir, file.name))).equals(file.data), `${file.name} reads back`);
  t.is(await readFile(join(fsDir, 'dir', 'note.txt'), 'utf8'), 'served by sbm\n');
  await execa('umount', [fsDir], STEP);
  mounted = false;
  await execa('losetup', ['-d', loop], STEP);
  await fuse.unmount();

  // ext4 spreads metadata over the disk but leaves most of 256 MiB untouched: the bundle stays sparse.
  const present = served.bundle.bandsPresent();
  t.true(present.length > 0 && present.length < 32, `bands present: ${present.join(',')}`);

  // The change tracker names every band the filesystem wrote (never fewer) and nothing it did not
  // touch; zeroing a band that was never there changes nothing and may go unreported.
  const report = await new BundleSession(served.bundle).changedBands(token);
  const reported = new Set(report.bands.map((band) => band.bandIndex));
  const { written, zeroed } = recorder as NonNullable<typeof recorder>;
  t.true(written.size > 0);
  for (const band of written) t.true(reported.has(band), `band ${band} was written but not reported`);
  for (const band of reported) t.true(written.has(band) || zeroed.has(band), `band ${band} reported but never touched`);
  t.true(report.bands.every((band) => !band.foreign));
});
