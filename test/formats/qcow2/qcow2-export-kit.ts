// Helpers for the qcow2 export tests: sources made at test time (bundles and raw files with holes,
// zero runs and data at the end), and the checks every exported image must pass: `qemu-img check`
// with no errors and no leaks, `qemu-img compare` equal to the source's raw bytes, and sbm's own
// qcow2 reader reading the same bytes back.

import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { openImage } from '../../../formats/index.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { runSbm, seededBytes } from '../../helpers/tools.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;

export interface QemuCheck {
  readonly 'check-errors': number;
  readonly corruptions?: number;
  readonly leaks?: number;
  readonly 'allocated-clusters': number;
  readonly 'compressed-clusters'?: number;
  readonly 'image-end-offset': number;
}

/** `qemu-img check` must exit 0 and report no corruption, no leak and no check error. */
export async function assertQemuCheckClean(t: ExecutionContext, image: string): Promise<QemuCheck> {
  const check = await execa('qemu-img', ['check', '-f', 'qcow2', '--output=json', image], { reject: false });
  t.is(check.exitCode, 0, `qemu-img check ${image}: ${check.stdout}${check.stderr}`);
  const report = JSON.parse(check.stdout) as QemuCheck;
  t.is(report['check-errors'], 0);
  t.is(report.corruptions ?? 0, 0, 'no corruptions');
  t.is(report.leaks ?? 0, 0, 'no leaked clusters');
  return report;
}

/** `qemu-img compare` of the raw reference and the qcow2 says identical. */
export async function assertQemuCompareEqual(t: ExecutionContext, raw: string, image: string): Promise<void> {
  const compare = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, image], { reject: false });
  t.is(compare.exitCode, 0, `qemu-img compare ${raw} ${image}: ${compare.stdout}${compare.stderr}`);
}

/** sbm's qcow2 reader (opened by content) says the image equals the source, through `sbm compare`'s engine. */
export async function assertSbmReadsEqual(t: ExecutionContext, source: string, image: string): Promise<void> {
  const reader = await openImage(image);
  try {
    t.is(reader.formatName, 'qcow2');
  } finally {
    await reader.close();
  }
  const compared = await runSbm(['compare', source, image]);
  t.is(compared.exitCode, 0, `sbm compare ${source} ${image}: ${compared.stdout}${compared.stderr}`);
}

export interface Run {
  readonly offset: number;
  readonly length: number;
  /** Seed of the pseudo-random bytes; 'zero' writes zeros (allocated in the bundle, all-zero clusters). */
  readonly fill: number | 'zero' | 'text';
}

const TEXT = Buffer.from('sbm exports qcow2 clusters; this line compresses well.\n'.repeat(2000));

export function runBytes(run: Run): Buffer {
  if (run.fill === 'zero') return Buffer.alloc(run.length);
  if (run.fill === 'text') return Buffer.from(TEXT.subarray(0, run.length));
  return seededBytes(run.length, run.fill);
}

/** A bundle with the given runs written into it (8 MiB bands unless told). */
export async function makeBundle(path: string, sizeBytes: number, runs: readonly Run[], bandSizeBytes = 8 * MiB): Promise<void> {
  const bundle = await SparseBundle.create(path, { sizeBytes, bandSizeBytes });
  try {
    for (const run of runs) {
      for (let at = 0; at < run.length; at += TEXT.length) {
        const piece = runBytes({ ...run, offset: run.offset + at, length: Math.min(TEXT.length, run.length - at) });
        await bundle.write(run.offset + at, piece);
      }
    }
  } finally {
    await bundle.close();
  }
}

/** `sbm export --format raw` of any source: the reference qemu-img compares the qcow2 against. */
export async function exportRaw(t: ExecutionContext, source: string, raw: string): Promise<void> {
  const exported = await runSbm(['export', source, raw, '--format', 'raw', '--no-progress']);
  t.is(exported.exitCode, 0, exported.stderr);
}

/** The L1 table entries of an exported image (big-endian u64 at l1_table_offset). */
export async function l1Entries(image: string): Promise<bigint[]> {
  const bytes = await readFile(image);
  const l1Size = bytes.readUInt32BE(36);
  const l1Offset = Number(bytes.readBigUInt64BE(40));
  return Array.from({ length: l1Size }, (_, index) => bytes.readBigUInt64BE(l1Offset + index * 8));
}
