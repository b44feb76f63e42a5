// `sbm sync` refuses a disk its hypervisor has open for writing (SBM_LOCKED, naming it) unless
// --force-share, and --at-snapshot reads the frozen chain under a running top layer.

import test, { type ExecutionContext } from 'ava';
import { type ResultPromise, execa } from 'execa';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { MIB, bundleBytes, emptyBundle, qemu, qemuWrite } from './sync-rig.js';

const SIZE = 4 * MIB;

/** Starts `command`, kills it (by its pid) when the test ends. */
function hold(t: ExecutionContext, command: string, args: string[]): ResultPromise {
  const child = execa(command, args, { stdin: 'pipe', reject: false });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return child;
}

/** Runs sync until it gives `exitCode` (the holder needs a moment to open the file), at most ~10 s. */
async function syncUntil(args: string[], exitCode: number) {
  let run = await runSbm(args);
  for (let attempt = 0; attempt < 50 && run.exitCode !== exitCode; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    run = await runSbm(args);
  }
  return run;
}

async function vmdkDisk(t: ExecutionContext, dir: string): Promise<string> {
  const disk = join(dir, 'disk.vmdk');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'vmdk', disk, String(SIZE)]);
  await qemuWrite(t, 'vmdk', disk, [[0x5a, MIB, 65536]]);
  return disk;
}

test('a VMDK held read-write by qemu-io is refused with SBM_LOCKED naming qemu; --force-share reads it', async (t) => {
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const disk = await vmdkDisk(t, dir);
  const bundle = join(dir, 'disk.sparsebundle');
  await emptyBundle(t, bundle, SIZE);
  hold(t, 'qemu-io', ['-f', 'vmdk', disk]);
  const refused = await syncUntil(['sync', disk, bundle], 3);
  t.is(refused.exitCode, 3, refused.stderr);
  t.regex(refused.stderr, /^sbm: SBM_LOCKED: .*disk\.vmdk is open for writing by qemu \(OFDLCK lock on byte 101/);
  t.regex(refused.stderr, /--at-snapshot/);
  t.false((await readFile(join(bundle, '.sbm', 'sync.json')).catch(() => undefined)) !== undefined, 'nothing was synced');
  const forced = await runSbm(['sync', disk, bundle, '--force-share', '--json']);
  t.is(forced.exitCode, 0, forced.stderr);
  t.is(JSON.parse(forced.stdout).bandsWritten, 1);
});

test('a raw disk another process holds open for writing is refused; open for reading is not', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.raw');
  await writeFile(disk, Buffer.alloc(SIZE, 1));
  const bundle = join(dir, 'disk.sparsebundle');
  await emptyBundle(t, bundle, SIZE);
  const holdOpen = (flags: string) =>
    hold(t, process.execPath, ['-e', `require('fs').openSync(${JSON.stringify(disk)}, '${flags}'); setInterval(() => {}, 1000)`]);
  const reader = holdOpen('r');
  await new Promise((resolve) => setTimeout(resolve, 500));
  const allowed = await runSbm(['sync', disk, bundle]);
  t.is(allowed.exitCode, 0, allowed.stderr);
  reader.kill('SIGKILL');
  const writer = holdOpen('r+');
  const refused = await syncUntil(['sync', disk, bundle], 3);
  t.regex(refused.stderr, new RegExp(`^sbm: SBM_LOCKED: .*open for writing by node \\(pid ${writer.pid}\\)`));
});

test('VMware .lck folders and Parallels .lck markers are refused; a shared VMware lock is not', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.vmdk');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'vmdk', disk, String(SIZE)]);
  const bundle = join(dir, 'disk.sparsebundle');
  await emptyBundle(t, bundle, SIZE);
  await mkdir(`${disk}.lck`);
  const member = join(`${disk}.lck`, 'M12345.lck');
  await writeFile(member, '564d0000-machine 0000-exec 7 X [ lc=123'.padEnd(512, '\0'));
  const exclusive = await runSbm(['sync', disk, bundle]);
  t.is(exclusive.exitCode, 3);
  t.regex(exclusive.stderr, /^sbm: SBM_LOCKED: .*by VMware \(lock .*M12345\.lck \(type X\)\)/);
  await writeFile(member, '564d0000-machine 0000-exec 7 S [ lc=123'.padEnd(512, '\0'));
  t.is((await runSbm(['sync', disk, bundle])).exitCode, 0, 'a shared lock is a reader (a parent of the running link)');

  const hdd = join(dir, 'Windows.pvm', 'harddisk.hdd');
  await mkdir(hdd, { recursive: true });
  const raw = join(hdd, 'disk.raw');
  await writeFile(raw, Buffer.alloc(SIZE));
  await writeFile(join(dir, 'Windows.pvm', '.lck'), '');
  const parallels = await runSbm(['sync', raw, bundle]);
  t.is(parallels.exitCode, 3);
  t.regex(parallels.stderr, /^sbm: SBM_LOCKED: .*by Parallels Desktop/);
});

test('--at-snapshot reads the chain a .vmsd snapshot froze, under a top layer qemu is writing', async (t) => {
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const base = await vmdkDisk(t, dir);
  const top = join(dir, 'disk-000001.vmdk');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'vmdk', '-b', base, '-F', 'vmdk', top]);
  await qemuWrite(t, 'vmdk', top, [[0x6b, 2 * MIB, 65536]]);
  await writeFile(
    join(dir, 'vm.vmsd'),
    '.encoding = "UTF-8"\nsnapshot.numSnapshots = "1"\nsnapshot0.uid = "1"\nsnapshot0.displayName = "Before |22update|22"\n' +
      'snapshot0.disk0.fileName = "disk.vmdk"\nsnapshot0.disk0.node = "scsi0:0"\n',
  );
  const bundle = join(dir, 'disk.sparsebundle');
  await emptyBundle(t, bundle, SIZE);
  hold(t, 'qemu-io', ['-f', 'vmdk', top]);
  t.is((await syncUntil(['sync', top, bundle], 3)).exitCode, 3, 'the running top is refused');

  const run = await runSbm(['sync', top, bundle, '--at-snapshot', 'Before "update"', '--json']);
  t.is(run.exitCode, 0, run.stderr);
  t.is(JSON.parse(run.stdout).source, base);
  const expected = join(dir, 'base.raw');
  await qemu(t, 'qemu-img', ['convert', '-U', '-f', 'vmdk', '-O', 'raw', base, expected]);
  t.true((await bundleBytes(bundle)).equals(await readFile(expected)), 'the bundle holds the snapshot, not the running top');

  const byFile = await runSbm(['sync', top, bundle, '--at-snapshot', 'disk.vmdk', '--json']);
  t.is(byFile.exitCode, 0, byFile.stderr);
  t.is(JSON.parse(byFile.stdout).bandsWritten, 0);
  const unknown = await runSbm(['sync', top, bundle, '--at-snapshot', 'Nope']);
  t.is(unknown.exitCode, 1);
  t.regex(unknown.stderr, /^sbm: SBM_NOT_FOUND: no snapshot "Nope" of .*not in vm\.vmsd/);
});
