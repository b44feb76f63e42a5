// Shared helpers of the VMDK tests: deterministic sparse raw sources, the qemu-img oracle, a full
// byte comparison through sbm's reader, and vmdkinfo output parsing.

import { execa } from 'execa';
import { open } from 'node:fs/promises';

import type { ExecutionContext } from 'ava';
import type { BlockDevice } from '../../../lib/block-device.js';
import { copyDevice } from '../../../lib/copy-device.js';
import { RawImage } from '../../../formats/raw/raw-image.js';
import { seededBytes } from '../../helpers/tools.js';

export interface DataRun {
  readonly offset: number;
  readonly length: number;
  readonly seed: number;
}

export const MiB = 1024 * 1024;

/** A sparse raw file of `sizeBytes` holding seeded random bytes in `runs` and holes elsewhere. */
export async function makeSourceRaw(path: string, sizeBytes: number, runs: readonly DataRun[]): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.truncate(sizeBytes);
    for (const run of runs) await handle.write(seededBytes(run.length, run.seed), 0, run.length, run.offset);
  } finally {
    await handle.close();
  }
}

export async function qemuImg(args: string[]): Promise<string> {
  const result = await execa('qemu-img', args);
  return result.stdout;
}

/** Converts `device` to a sparse raw file through sbm's copy engine (extents + reads). */
export async function sbmToRaw(device: BlockDevice, outPath: string): Promise<void> {
  const target = await RawImage.create(outPath, device.sizeBytes);
  try {
    await copyDevice(device, target, { chunkBytes: 8 * MiB });
  } finally {
    await target.close();
  }
}

/** Compares two images with qemu-img compare (exit 0 = identical). */
export async function qemuCompare(t: ExecutionContext, a: string, formatA: string, b: string, formatB: string): Promise<void> {
  const result = await execa('qemu-img', ['compare', '-q', '-f', formatA, '-F', formatB, a, b], { reject: false });
  t.is(result.exitCode, 0, `qemu-img compare ${a} ${b}: ${result.stdout}${result.stderr}`);
}

/** Reads the whole device in 4 MiB chunks and compares with the raw file, byte for byte. */
export async function compareAllBytes(t: ExecutionContext, device: BlockDevice, rawPath: string): Promise<void> {
  const raw = await open(rawPath, 'r');
  try {
    const { size } = await raw.stat();
    t.is(device.sizeBytes, size, 'virtual size');
    const chunk = 4 * MiB;
    for (let offset = 0; offset < size; offset += chunk) {
      const length = Math.min(chunk, size - offset);
      const want = Buffer.alloc(length);
      await raw.read(want, 0, length, offset);
      const got = await device.read(offset, length);
      if (!got.equals(want)) {
        t.fail(`bytes differ in [${offset}, ${offset + length})`);
        return;
      }
    }
    t.pass();
  } finally {
    await raw.close();
  }
}

/** Kind of the extent covering `offset`. */
export async function kindAt(device: BlockDevice, offset: number): Promise<string> {
  const [first] = await device.extents(offset, 1);
  return first?.kind ?? 'none';
}

export interface VmdkInfo {
  readonly mediaSize: number;
  readonly extentCount: number;
}

export async function vmdkinfo(path: string): Promise<VmdkInfo> {
  const { stdout } = await execa('vmdkinfo', [path]);
  const media = /Media size:.*\((\d+) bytes\)/.exec(stdout);
  const extents = /Number of extents:\s*(\d+)/.exec(stdout);
  return { mediaSize: Number(media?.[1] ?? -1), extentCount: Number(extents?.[1] ?? -1) };
}
