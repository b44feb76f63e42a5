// Benchmark harness: runs every variant of a workload interleaved (sbm, peer, sbm, peer, ...)
// at least `runs` times under GNU time, so machine noise hits all of them alike, and reduces the
// samples to median, min, max and peak RSS. Not a test: numbers go to BENCHMARKS.md.

import { execa } from 'execa';

export interface Variant {
  readonly label: string;
  /** The command measured (argv), or a function building it after `before` ran. */
  readonly command: readonly string[] | (() => readonly string[]);
  /** Runs before each measured run, unmeasured (e.g. remove the previous output). */
  readonly before?: () => Promise<void>;
  readonly env?: Record<string, string>;
  /** Throughput base for MiB/s, when meaningful. */
  readonly bytes?: number;
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
}

export interface WorkloadResult {
  readonly workload: Workload;
  readonly results: readonly VariantResult[];
}

export async function runWorkload(workload: Workload, runs: number, log: (line: string) => void): Promise<WorkloadResult> {
  const samples = new Map<string, { seconds: number[]; rssKiB: number[] }>();
  for (const variant of workload.variants) samples.set(variant.label, { seconds: [], rssKiB: [] });
  for (let run = 0; run < runs; run++) {
    for (const variant of workload.variants) {
      await variant.before?.();
      const command = commandOf(variant);
      const timed = await execa('/usr/bin/time', ['-f', 'SBM_BENCH %e %M', ...command], {
        reject: false,
        env: variant.env,
        all: true,
      });
      const match = /SBM_BENCH ([\d.]+) (\d+)/.exec(timed.stderr);
      if (timed.exitCode !== 0 || match === null) {
        throw new Error(`${workload.id}/${variant.label} failed (exit ${timed.exitCode}): ${command.join(' ')}\n${timed.all}`);
      }
      const sample = samples.get(variant.label);
      sample?.seconds.push(Number(match[1]));
      sample?.rssKiB.push(Number(match[2]));
      log(`  ${workload.id} run ${run + 1}/${runs} ${variant.label}: ${match[1]} s, ${(Number(match[2]) / 1024).toFixed(0)} MiB RSS`);
    }
  }
  return {
    workload,
    results: workload.variants.map((variant) => {
      const sample = samples.get(variant.label) ?? { seconds: [], rssKiB: [] };
      return {
        label: variant.label,
        command: commandOf(variant).join(' '),
        secondsMedian: median(sample.seconds),
        secondsMin: Math.min(...sample.seconds),
        secondsMax: Math.max(...sample.seconds),
        peakRssMiB: Math.max(...sample.rssKiB) / 1024,
        samples: sample.seconds,
        ...(variant.bytes === undefined ? {} : { bytes: variant.bytes }),
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
  const lines = [
    `### ${workload.title}`,
    '',
    workload.notes,
    '',
    '| variant | median s | min–max s | MiB/s | sbm time ÷ this | peak RSS MiB | command |',
    '|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const result of results) {
    const ratio = subject === undefined || result.secondsMedian === 0 ? '' : (subject.secondsMedian / result.secondsMedian).toFixed(2);
    const rate = result.bytes === undefined || result.secondsMedian === 0 ? '' : (result.bytes / 1024 / 1024 / result.secondsMedian).toFixed(0);
    lines.push(
      `| ${result.label} | ${result.secondsMedian.toFixed(3)} | ${result.secondsMin.toFixed(2)}–${result.secondsMax.toFixed(2)} | ${rate} | ${result === subject ? '1.00' : ratio} | ${result.peakRssMiB.toFixed(0)} | \`${shorten(result.command)}\` |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

function shorten(command: string): string {
  return command.replace(/\/tmp\/sbm-bench-[^/]+\//g, '').replace(/\S*\/dist\/cli\/sbm\.js/g, 'sbm');
}
