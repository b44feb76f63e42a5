// Helpers for the qcow2 reader tests: images are made at test time with qemu-img and qemu-io,
// and every comparison is against `qemu-img convert -O raw` of the same image.

import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runSbm, seededBytes } from '../../helpers/tools.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;

export async function qemuImg(...args: string[]): Promise<void> {
  await execa('qemu-img', args);
}

/** Runs qemu-io commands against a qcow2 image (format named, so nothing is probed). */
export async function qemuIo(file: string, ...commands: string[]): Promise<void> {
  await execa('qemu-io', ['-f', 'qcow2', ...commands.flatMap((command) => ['-c', command]), file]);
}

/** A raw source with compressible text, random bytes and zero runs, for `qemu-img convert -c`. */
export async function makeMixedRaw(path: string, sizeBytes: number, seed: number): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.truncate(sizeBytes);
    const text = Buffer.from('sbm qcow2 compressed cluster test line\n'.repeat(4000));
    for (let at = 0, index = 0; at < sizeBytes; at += 256 * KiB, index++) {
      // Per 256 KiB: text, random, nothing (a hole), random-then-zero; each a different cluster mix.
      const kind = index % 4;
      const length = Math.min(96 * KiB, sizeBytes - at);
      if (kind === 0) await handle.write(text.subarray(0, length), 0, length, at);
      else if (kind === 1) await handle.write(seededBytes(length, seed + index), 0, length, at);
      else if (kind === 3) await handle.write(seededBytes(5000, seed + index), 0, 5000, at + 3000);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Converts `image` with `sbm convert`, exports the bundle as raw and asserts it equals
 * `qemu-img convert -O raw` byte for byte. Returns the raw bytes for further checks.
 */
export async function assertConvertsLikeQemu(t: ExecutionContext, dir: string, image: string, label: string): Promise<Buffer> {
  const bundle = join(dir, `${label}.sparsebundle`);
  const converted = await runSbm(['convert', image, bundle, '--no-progress', '--json']);
  t.is(converted.exitCode, 0, `${label}: ${converted.stderr}`);
  t.is(JSON.parse(converted.stdout).format, 'qcow2', label);
  const exported = join(dir, `${label}.sbm.raw`);
  const back = await runSbm(['export', bundle, exported, '--format', 'raw']);
  t.is(back.exitCode, 0, `${label}: ${back.stderr}`);
  const reference = join(dir, `${label}.qemu.raw`);
  await qemuImg('convert', '-f', 'qcow2', '-O', 'raw', image, reference);
  const [ours, theirs] = await Promise.all([readFile(exported), readFile(reference)]);
  t.is(ours.length, theirs.length, `${label}: size`);
  t.true(ours.equals(theirs), `${label}: bytes equal qemu-img convert -O raw`);
  return theirs;
}

/** Sets `bit` of the big-endian u64 at `offset` of a file. */
export async function setBit64(path: string, offset: number, bit: number): Promise<void> {
  const bytes = await readFile(path);
  const value = bytes.readBigUInt64BE(offset) | (1n << BigInt(bit));
  const handle = await open(path, 'r+');
  try {
    const out = Buffer.alloc(8);
    out.writeBigUInt64BE(value);
    await handle.write(out, 0, 8, offset);
  } finally {
    await handle.close();
  }
}

/** Writes `bytes` at `offset` of an existing file. */
export async function poke(path: string, offset: number, bytes: Buffer): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.write(bytes, 0, bytes.length, offset);
  } finally {
    await handle.close();
  }
}
