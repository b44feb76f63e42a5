// Benchmark harness: runs every variant of a workload interleaved (sbm, peer, sbm, peer, ...)
// at least `runs` times under GNU time, so machine noise hits all of them alike, and reduces the
// samples to median, min, max and peak RSS. Short workloads get more rounds (up to
// EXTRA_ROUNDS_MAX while a round takes under EXTRA_ROUNDS_BELOW_SECONDS): their medians move
// most with noise. Wall-clock time is taken here in nanoseconds around the GNU time wrapper
// (which adds about a millisecond to every variant alike); GNU time itself reports only
// hundredths, too coarse for a 0.1 s target. Not a test: numbers go to BENCHMARKS.md.

import { execa } from 'execa';
import { SbmError } from '../../lib/errors.js';

export interface Variant {
  readonly label: string;
  /** The command measured (argv), or a function building it after `before` ran. */
  readonly command: readonly string[] | (() => readonly string[]);
  /** Runs before each measured run, unmeasured (e.g. remove the previous output). */
  readonly before?: () => Promise<void>;
  readonly env?: Record<string, string>;
  /** Throughput base for MiB/s, when meaningful. */
  readonly bytes?: number;
  /**
   * Size of what the variant writes to (a repository, a backup folder), taken unmeasured right
   * before and after each run: the difference is the bytes that run added.
   */
  readonly storedBytes?: () => Promise<number>;
}

export interface Workload {
  readonly id: string;
  readonly title: string;
  /** What the peers are and why they are the right comparison. */
  readonly notes: string;
  readonly variants: readonly Variant[];
  /** The variant every ratio is taken against (sbm). */
  readonly subject: string;
  /** Runs after the workload (e.g. stops servers shared by several workloads). */
  readonly teardown?: () => Promise<void>;
  /** Peak RSS in MiB of a process the variants talk to (a server), read once the runs are over. */
  readonly serverPeakRssMiB?: () => Promise<number>;
}

export interface VariantResult {
  readonly label: string;
  readonly command: string;
  readonly secondsMedian: number;
  readonly secondsMin: number;
  readonly secondsMax: number;
  readonly peakRssMiB: number;
  readonly samples: readonly number[];
  readonly bytes?: number;
  /** Median bytes one run added to its repository, for variants with `storedBytes`. */
  readonly addedBytesMedian?: number;
}

export interface WorkloadResult {
  readonly workload: Workload;
  readonly results: readonly VariantResult[];
  readonly serverPeakRssMiB?: number;
}

/** Rounds a short workload may run beyond `runs`... */
export const EXTRA_ROUNDS_MAX = 11;
/** ...while one round of all its variants takes less than this. */
export const EXTRA_ROUNDS_BELOW_SECONDS = 3;

export async function runWorkload(workload: Workload, runs: number, log: (line: string) => void): Promise<WorkloadResult> {
  const samples = new Map<string, { seconds: number[]; rssKiB: number[]; added: number[] }>();
  for (const variant of workload.variants) samples.set(variant.label, { seconds: [], rssKiB: [], added: [] });
  let rounds = runs;
  for (let run = 0; run < rounds; run++) {
    let roundSeconds = 0;
    for (const variant of workload.variants) {
      await variant.before?.();
      const storedBefore = await variant.storedBytes?.();
      const command = commandOf(variant);
      const started = process.hrtime.bigint();
      const timed = await execa('/usr/bin/time', ['-f', 'SBM_BENCH %M', ...command], {
        reject: false,
        env: variant.env,
        all: true,
      });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const match = /SBM_BENCH (\d+)/.exec(timed.stderr);
      if (timed.exitCode !== 0 || match === null) {
        // A measured command that fails makes every figure of the report meaningless: stop.
        throw new SbmError(
          'SBM_INTERNAL',
          `${workload.id}/${variant.label} failed (exit ${timed.exitCode}): ${command.join(' ')}\n${timed.all}`,
          { exitCode: timed.exitCode },
        );
      }
      roundSeconds += seconds;
      const sample = samples.get(variant.label);
      sample?.seconds.push(seconds);
      sample?.rssKiB.push(Number(match[1]));
      const storedAfter = await variant.storedBytes?.();
      const added = storedBefore === undefined || storedAfter === undefined ? undefined : storedAfter - storedBefore;
      if (added !== undefined) sample?.added.push(added);
      log(
        `  ${workload.id} run ${run + 1} ${variant.label}: ${seconds.toFixed(3)} s, ${(Number(match[1]) / 1024).toFixed(0)} MiB RSS` +
          (added === undefined ? '' : `, ${(added / 2 ** 20).toFixed(1)} MiB added`),
      );
    }
    if (run === 0 && roundSeconds < EXTRA_ROUNDS_BELOW_SECONDS) rounds = Math.max(runs, EXTRA_ROUNDS_MAX);
  }
  const serverPeakRssMiB = await workload.serverPeakRssMiB?.();
  return {
    workload,
    ...(serverPeakRssMiB === undefined ? {} : { serverPeakRssMiB }),
    results: workload.variants.map((variant) => {
      const sample = samples.get(variant.label) ?? { seconds: [], rssKiB: [], added: [] };
      return {
        label: variant.label,
        command: commandOf(variant).join(' '),
        secondsMedian: median(sample.seconds),
        secondsMin: Math.min(...sample.seconds),
        secondsMax: Math.max(...sample.seconds),
        peakRssMiB: Math.max(...sample.rssKiB) / 1024,
        samples: sample.seconds,
        ...(variant.bytes === undefined ? {} : { bytes: variant.bytes }),
        ...(sample.added.length === 0 ? {} : { addedBytesMedian: median(sample.added) }),
      };
    }),
  };
}

function commandOf(variant: Variant): readonly string[] {
  return typeof variant.command === 'function' ? variant.command() : variant.command;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** A Markdown section for one workload: command, median, min-max, ratio to sbm, peak RSS. */
export function renderWorkload({ workload, results }: WorkloadResult): string {
  const subject = results.find((result) => result.label === workload.subject);
  const stored = results.some((result) => result.addedBytesMedian !== undefined);
  const lines = [
    `### ${workload.title}`,
    '',
    workload.notes,
    '',
    `Runs per variant: ${subject?.samples.length ?? results[0]?.samples.length ?? 0}.`,
    '',
    `| variant | median s | min–max s | MiB/s | sbm time ÷ this | peak RSS MiB |${stored ? ' MiB added per run |' : ''} command |`,
    `|---|---:|---:|---:|---:|---:|${stored ? '---:|' : ''}---|`,
  ];
  for (const result of results) {
    const ratio = subject === undefined || result.secondsMedian === 0 ? '' : (subject.secondsMedian / result.secondsMedian).toFixed(2);
    const rate =
      result.bytes === undefined || result.secondsMedian === 0 ? '' : (result.bytes / 1024 / 1024 / result.secondsMedian).toFixed(0);
    lines.push(
      `| ${result.label} | ${result.secondsMedian.toFixed(3)} | ` +
        `${result.secondsMin.toFixed(3)}–${result.secondsMax.toFixed(3)} | ${rate} | ` +
        `${result === subject ? '1.00' : ratio} | ${result.peakRssMiB.toFixed(0)} |` +
        (stored ? ` ${result.addedBytesMedian === undefined ? '' : (result.addedBytesMedian / 2 ** 20).toFixed(1)} |` : '') +
        ` \`${shorten(result.command)}\` |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

function shorten(command: string): string {
  return command.replace(/\/tmp\/sbm-bench-[^/]+\//g, '').replace(/\S*\/dist\/cli\/sbm\.js/g, 'sbm');
}
