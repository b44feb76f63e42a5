// Shared helpers of the VDI and VHDX exporter tests: sparse raw sources with data runs, written
// zero runs and holes; the blocks an exporter must allocate, computed from the runs alone; and the
// qemu-img oracle (check, compare, info) plus a read-back through sbm's own reader.

import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { open, readFile, rm } from 'node:fs/promises';
import { openImage } from '../../formats/index.js';
import { RawImage } from '../../formats/raw/raw-image.js';
import { compareDevices } from '../../lib/compare-devices.js';
import { seededBytes } from '../helpers/tools.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Seeded random bytes, or written zeros (`seed: 0`), which an exporter must not allocate. */
export interface SourceRun {
  readonly offset: number;
  readonly length: number;
  readonly seed: number;
}

export interface SourceCase {
  readonly title: string;
  readonly sizeBytes: number;
  readonly runs: readonly SourceRun[];
  /**
   * Too big for `qemu-img compare` where qemu's driver reports no block status (VHDX: it would
   * read every byte): qemu reads back each run's MiBs instead (assertQemuReadsRuns).
   */
  readonly huge?: boolean;
}

const runBytes = (run: SourceRun): Buffer => (run.seed === 0 ? Buffer.alloc(run.length) : seededBytes(run.length, run.seed));

/** A sparse raw file: holes everywhere but the runs (zero runs are written, so they are data to SEEK_DATA). */
export async function makeSource(path: string, source: SourceCase): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.truncate(source.sizeBytes);
    for (const run of source.runs) await handle.write(runBytes(run), 0, run.length, run.offset);
  } finally {
    await handle.close();
  }
}

/** Indexes of the blocks of `blockBytes` that hold a non-zero byte once every run is written. */
export function blocksWithData(source: SourceCase, blockBytes: number): number[] {
  const blocks = new Set<number>();
  for (const block of new Set(source.runs.flatMap((run) => blockRange(run.offset, run.length, blockBytes)))) {
    const start = block * blockBytes;
    const end = Math.min(source.sizeBytes, start + blockBytes);
    const content = Buffer.alloc(end - start);
    for (const run of source.runs) {
      const from = Math.max(start, run.offset);
      const to = Math.min(end, run.offset + run.length);
      if (from < to) runBytes(run).copy(content, from - start, from - run.offset, to - run.offset);
    }
    if (content.some((byte) => byte !== 0)) blocks.add(block);
  }
  return [...blocks].sort((a, b) => a - b);
}

function blockRange(offset: number, length: number, blockBytes: number): number[] {
  const out: number[] = [];
  for (let block = Math.floor(offset / blockBytes); block * blockBytes < offset + length; block++) out.push(block);
  return out;
}

export interface QemuInfo {
  readonly format: string;
  readonly 'virtual-size': number;
}

export async function qemuInfo(path: string): Promise<QemuInfo> {
  return JSON.parse((await execa('qemu-img', ['info', '--output=json', path])).stdout) as QemuInfo;
}

/** `qemu-img check` exits 0 (no errors, no leaks) for the image. */
export async function assertQemuCheck(t: ExecutionContext, path: string, format: string): Promise<void> {
  const check = await execa('qemu-img', ['check', '-f', format, path], { reject: false });
  t.is(check.exitCode, 0, `qemu-img check ${path}: ${check.stdout}${check.stderr}`);
}

/** `qemu-img compare` of the raw source and the image says "identical" (exit 0). */
export async function assertQemuCompare(t: ExecutionContext, rawPath: string, path: string, format: string): Promise<void> {
  const result = await execa('qemu-img', ['compare', '-f', 'raw', '-F', format, rawPath, path], { reject: false });
  t.is(result.exitCode, 0, `qemu-img compare ${rawPath} ${path}: ${result.stdout}${result.stderr}`);
}

/** Opens the image with sbm's reader (by content) and compares it with the raw source. */
export async function assertSbmReadsSame(t: ExecutionContext, rawPath: string, path: string, format: string): Promise<void> {
  const raw = await RawImage.open(rawPath);
  const image = await openImage(path);
  try {
    t.is(image.formatName, format);
    t.is(image.sizeBytes, Math.ceil(raw.sizeBytes / 512) * 512, 'virtual size: the source rounded up to whole sectors');
    const result = await compareDevices(raw, image);
    t.true(result.equal, `sbm reads ${path} back differently from ${rawPath} at ${result.firstDifferenceOffset}`);
  } finally {
    await image.close();
    await raw.close();
  }
}

/** Bytes the file really occupies on disk (st_blocks), to show holes stay holes. */
export async function allocatedFileBytes(path: string): Promise<number> {
  const handle = await open(path, 'r');
  try {
    return (await handle.stat()).blocks * 512;
  } finally {
    await handle.close();
  }
}

/**
 * qemu reads back, through its own driver, the whole MiBs around each run of the source (with
 * `qemu-img dd`, whose `count` is the end block, not a count: qemu 7.2 compares skip with it).
 */
export async function assertQemuReadsRuns(t: ExecutionContext, rawPath: string, path: string, format: string, source: SourceCase) {
  const raw = await open(rawPath, 'r');
  const part = `${path}.part`;
  try {
    for (const run of source.runs) {
      const first = Math.floor(run.offset / MiB);
      const end = Math.min(Math.ceil(source.sizeBytes / MiB), Math.ceil((run.offset + run.length) / MiB));
      await rm(part, { force: true });
      const args = ['dd', '-f', format, '-O', 'raw', 'bs=1M', `skip=${first}`, `count=${end}`, `if=${path}`, `of=${part}`];
      await execa('qemu-img', args);
      const want = Buffer.alloc(Math.min(source.sizeBytes, end * MiB) - first * MiB);
      await raw.read(want, 0, want.length, first * MiB);
      const got = await readFile(part);
      t.true(got.subarray(0, want.length).equals(want), `qemu reads MiB ${first}..${end} of ${path} as the source`);
    }
  } finally {
    await raw.close();
    await rm(part, { force: true });
  }
}
