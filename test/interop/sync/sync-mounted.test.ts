// `sbm sync` into a bundle `sbm mount` serves (through the mount's control channel: its engine
// writes, its tracker records, its snapshots stay intact, its NBD clients see the new bytes), and
// a sync killed half-way leaves tracked changes covering every band it wrote.

import test, { type ExecutionContext } from 'ava';
import { type ResultPromise, execa } from 'execa';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SBM_BIN, requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { BAND_BYTES, MIB, bundleBytes, emptyBundle, qemu, qemuWrite } from './sync-rig.js';

const SIZE = 16 * MIB;

async function startMount(t: ExecutionContext, bundle: string): Promise<{ child: ResultPromise; uri: string }> {
  const child = execa('node', [SBM_BIN, 'mount', bundle, '--json'], { reject: false, env: { NO_COLOR: '1' } });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sbm mount not ready: ${output}`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      try {
        JSON.parse(output);
      } catch {
        return; // not the whole document yet
      }
      clearTimeout(timer);
      resolve();
    });
    void child.then((result) => reject(new Error(`sbm mount exited ${result.exitCode}: ${String(result.stderr)}`)));
  });
  return { child, uri: (JSON.parse(output) as { uri: string }).uri };
}

async function changedSince(t: ExecutionContext, bundle: string, token: string): Promise<number[]> {
  const run = await runSbm(['changed-bands', bundle, '--since', token, '--json']);
  t.is(run.exitCode, 0, run.stderr);
  return (JSON.parse(run.stdout) as { bands: Array<{ bandIndex: number }> }).bands.map((band) => band.bandIndex);
}

test('sync into a mounted bundle: through the mount, tracked, snapshot intact, visible over NBD', async (t) => {
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.vmdk');
  const bundle = join(dir, 'disk.sparsebundle');
  await qemu(t, 'qemu-img', ['create', '-q', '-f', 'vmdk', disk, String(SIZE)]);
  await qemuWrite(t, 'vmdk', disk, [[0x41, 2 * MIB, 65536]]);
  await emptyBundle(t, bundle, SIZE);
  t.is((await runSbm(['sync', disk, bundle])).exitCode, 0);
  t.is((await runSbm(['snapshot', 'create', bundle, 'before'])).exitCode, 0);

  const { child, uri } = await startMount(t, bundle);
  const token = (await runSbm(['token', bundle])).stdout.trim();
  await qemuWrite(t, 'vmdk', disk, [
    [0x42, 2 * MIB, 4096],
    [0x43, 9 * MIB, 4096],
    [0x44, 15 * MIB, 65536],
  ]);
  const run = await runSbm(['sync', disk, bundle, '--json']);
  t.is(run.exitCode, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { mode: string; bandsWritten: number };
  t.is(result.mode, 'full', 'the one layer is the base, and it changed');
  t.is(result.bandsWritten, 3);
  t.deepEqual(await changedSince(t, bundle, token), [2, 9, 15], 'the mount tracked exactly the bands sync wrote');

  const read = await execa(
    'qemu-io',
    ['-f', 'raw', '-c', `read -P 0x43 ${9 * MIB} 4096`, '-c', `read -P 0x41 ${2 * MIB + 4096} 4096`, uri],
    {
      reject: false,
    },
  );
  t.notRegex(read.stdout, /Pattern verification failed/, 'NBD clients see the synced bytes');
  t.is(read.exitCode, 0, read.stderr);

  const again = await runSbm(['sync', disk, bundle, '--json']);
  t.is(again.exitCode, 0, again.stderr);
  t.is((JSON.parse(again.stdout) as { bandsWritten: number }).bandsWritten, 0);

  child.kill('SIGTERM');
  await child;
  const expected = join(dir, 'expected.raw');
  await qemu(t, 'qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', disk, expected]);
  t.true((await bundleBytes(bundle)).equals(await readFile(expected)), 'the bundle equals the disk');
  const snapshot = await bundleBytes(join(bundle, '.sbm', 'snapshots', 'before.sparsebundle'));
  t.is(snapshot[2 * MIB], 0x41, 'the snapshot still holds the old bytes (copy-on-write)');
  t.is(snapshot[9 * MIB], 0);
});

test('a sync killed half-way leaves tracked changes covering every band it wrote; the next run finishes the job', async (t) => {
  const dir = await tempDir(t);
  const size = 192 * MIB;
  const disk = join(dir, 'disk.raw');
  const content = Buffer.alloc(size);
  for (let band = 0; band < size / BAND_BYTES; band++) content.fill((band % 250) + 1, band * BAND_BYTES, (band + 1) * BAND_BYTES);
  await writeFile(disk, content);
  const bundle = join(dir, 'disk.sparsebundle');
  await emptyBundle(t, bundle, size);
  const token = (await runSbm(['token', bundle])).stdout.trim();

  const child = execa('node', [SBM_BIN, 'sync', disk, bundle, '--no-progress'], { reject: false });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  for (let polls = 0; polls < 2000; polls++) {
    if ((await readdir(join(bundle, 'bands')).catch(() => [] as string[])).length >= 4) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  child.kill('SIGKILL');
  const killed = await child;
  t.is(killed.signal, 'SIGKILL', 'the sync was killed before it finished');

  const written = (await readdir(join(bundle, 'bands'))).map((name) => Number.parseInt(name, 16)).sort((a, b) => a - b);
  t.true(written.length >= 4 && written.length < size / BAND_BYTES, `${written.length} bands written before the kill`);
  const tracked = await changedSince(t, bundle, token);
  for (const band of written) t.true(tracked.includes(band), `band ${band}, written before the kill, is a tracked change`);

  const rerun = await runSbm(['sync', disk, bundle, '--json']);
  t.is(rerun.exitCode, 0, rerun.stderr);
  t.true((await bundleBytes(bundle)).equals(content), 'the next sync completes the bundle');
  t.is((await changedSince(t, bundle, token)).length, size / BAND_BYTES, 'every band is a change since the token');
});
