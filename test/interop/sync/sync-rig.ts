// A test rig for `sbm sync` against disks made by qemu-img: runs one sync and checks the three
// promises each time: the bundle equals `qemu-img convert -O raw` of the source, `changed-bands
// --since` (a token taken just before) lists exactly the bands whose content differed, and every
// other band file keeps its inode and mtime.

import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { runSbm } from '../../helpers/tools.js';

export const MIB = 1024 * 1024;
export const BAND_BYTES = MIB;

export interface SyncJson {
  mode: 'delta' | 'full';
  fullReason?: string;
  sizeBytes: number;
  bytesRead: number;
  bytesCompared: number;
  bandsCompared: number;
  bandsWritten: number;
  seconds: number;
}

export async function qemu(t: ExecutionContext, tool: string, args: string[]): Promise<string> {
  const run = await execa(tool, args, { reject: false });
  t.is(run.exitCode, 0, `${tool} ${args.join(' ')}: ${run.stderr}`);
  return run.stdout;
}

/** qemu-io writes: each [pattern byte, offset, length]. */
export async function qemuWrite(t: ExecutionContext, format: string, image: string, writes: Array<[number, number, number]>) {
  const commands = writes.flatMap(([pattern, offset, length]) => ['-c', `write -P ${pattern} ${offset} ${length}`]);
  await qemu(t, 'qemu-io', ['-f', format, ...commands, image]);
}

export async function bundleBytes(path: string): Promise<Buffer> {
  const bundle = await SparseBundle.open(path, { readOnly: true });
  try {
    return await bundle.read(0, bundle.sizeBytes);
  } finally {
    await bundle.close();
  }
}

async function bandStats(bundle: string): Promise<Map<number, string>> {
  const stats = new Map<number, string>();
  for (const name of await readdir(join(bundle, 'bands'))) {
    const info = await stat(join(bundle, 'bands', name), { bigint: true });
    stats.set(Number.parseInt(name, 16), `${info.ino}:${info.mtimeNs}:${info.size}`);
  }
  return stats;
}

function differingBands(before: Buffer, after: Buffer): number[] {
  const bands: number[] = [];
  const length = Math.max(before.length, after.length);
  for (let start = 0; start < length; start += BAND_BYTES) {
    const a = before.subarray(start, Math.min(start + BAND_BYTES, before.length));
    const b = after.subarray(start, Math.min(start + BAND_BYTES, after.length));
    const padded = Buffer.alloc(b.length);
    a.copy(padded);
    if (!padded.equals(b)) bands.push(start / BAND_BYTES);
  }
  return bands;
}

/** Runs `sbm sync disk bundle --json ...extra` and checks content, changed-bands and untouched bands. */
export async function checkedSync(
  t: ExecutionContext,
  dir: string,
  disk: string,
  format: string,
  bundle: string,
  extra: string[] = [],
  /** What the bundle must hold, when qemu-img cannot read `disk` itself (a Parallels folder). */
  qemuSpec?: string,
): Promise<SyncJson> {
  const token = (await runSbm(['token', bundle])).stdout.trim();
  const before = await bundleBytes(bundle);
  const statsBefore = await bandStats(bundle);
  const run = await runSbm(['sync', disk, bundle, '--json', ...extra]);
  t.is(run.exitCode, 0, run.stderr);
  const result = JSON.parse(run.stdout) as SyncJson;

  const raw = join(dir, 'expected.raw');
  await qemu(t, 'qemu-img', ['convert', '-f', format, '-O', 'raw', qemuSpec ?? disk, raw]);
  const expected = await readFile(raw);
  const after = await bundleBytes(bundle);
  t.is(after.length, expected.length, 'the bundle has the disk size');
  t.true(after.equals(expected), 'the bundle equals qemu-img convert of the source');

  const differing = differingBands(before, expected);
  const changed = await runSbm(['changed-bands', bundle, '--since', token, '--json']);
  t.is(changed.exitCode, 0, changed.stderr);
  const listed = (JSON.parse(changed.stdout) as { bands: Array<{ bandIndex: number }> }).bands.map((band) => band.bandIndex);
  t.deepEqual(listed, differing, 'changed-bands lists exactly the bands that differed');
  t.is(result.bandsWritten, differing.length, 'bandsWritten counts the bands that differed');

  const statsAfter = await bandStats(bundle);
  for (const [bandIndex, before] of statsBefore) {
    if (!differing.includes(bandIndex)) t.is(statsAfter.get(bandIndex), before, `band ${bandIndex} is untouched (inode, mtime, size)`);
  }
  return result;
}

/** An empty bundle of `sizeBytes` with 1 MiB bands. */
export async function emptyBundle(t: ExecutionContext, path: string, sizeBytes: number): Promise<void> {
  const run = await runSbm(['create', path, '--size', String(sizeBytes), '--band-size', String(BAND_BYTES)]);
  t.is(run.exitCode, 0, run.stderr);
}

/** Runs `sbm sync disk bundle --json`; returns its report and the bands changed-bands lists for the run. */
export async function syncListingBands(t: ExecutionContext, disk: string, bundle: string): Promise<SyncJson & { bands: number[] }> {
  const token = (await runSbm(['token', bundle])).stdout.trim();
  const run = await runSbm(['sync', disk, bundle, '--json']);
  t.is(run.exitCode, 0, run.stderr);
  const changed = await runSbm(['changed-bands', bundle, '--since', token, '--json']);
  const bands = (JSON.parse(changed.stdout) as { bands: Array<{ bandIndex: number }> }).bands.map((band) => band.bandIndex);
  return { ...(JSON.parse(run.stdout) as SyncJson), bands };
}
