// npm run bench [-- --quick] [-- --only convert,backup] [-- --runs N] [-- --out FILE]
// Builds its own data in a scratch folder, runs sbm and its peers interleaved (at least 5 times
// each), and writes BENCHMARKS.md: command, median, min-max, ratio sbm / peer, peak RSS, and
// whether each target of the project is met. Needs qemu-utils, nbdkit, libnbd-bin, fio, rsync,
// restic, borgbackup, Ceph's radosgw and GNU time (scripts/install-test-tools.sh installs them).

import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXTRA_ROUNDS_BELOW_SECONDS, EXTRA_ROUNDS_MAX, type WorkloadResult, renderWorkload, runWorkload } from './bench/harness.js';
import { BACKUP_PEERS, backupPeerWorkloads } from './bench/backup-peers.js';
import { nbdWorkloads } from './bench/nbd-workloads.js';
import { s3PeerWorkloads } from './bench/s3-peers.js';
import { syncWorkloads } from './bench/sync-workloads.js';
import {
  type BenchContext,
  QEMU_IMG_DURABLE,
  QEMU_IMG_UNSAFE,
  backupWorkloads,
  changedBandsWorkloads,
  convertWorkloads,
  memoryWorkloads,
} from './bench/workloads.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const runs = Number(args[args.indexOf('--runs') + 1] ?? 0) || 5;
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? (args[onlyIndex + 1] ?? '').split(',') : undefined;
// A partial or exploratory run can write its report elsewhere and leave BENCHMARKS.md alone.
const outIndex = args.indexOf('--out');
const outPath = outIndex >= 0 ? resolve(args[outIndex + 1] ?? '') : join(REPO, 'BENCHMARKS.md');
/** The options that shape the report (not where it goes), as the report's first line names them. */
const shownArgs = outIndex < 0 ? args : args.filter((_arg, index) => index !== outIndex && index !== outIndex + 1);
const shownCommand = `npm run bench${shownArgs.length > 0 ? ` -- ${shownArgs.join(' ')}` : ''}`;

const GROUPS: Record<string, (context: BenchContext) => ReturnType<typeof convertWorkloads>> = {
  convert: convertWorkloads,
  nbd: nbdWorkloads,
  changed: changedBandsWorkloads,
  backup: backupWorkloads,
  'backup-peers': backupPeerWorkloads,
  s3: s3PeerWorkloads,
  sync: syncWorkloads,
  memory: memoryWorkloads,
};

const log = (line: string) => process.stderr.write(`${line}\n`);

// NODE_EXTRA_CA_CERTS makes every Node process parse that certificate file before running any
// code (a large share of a short command when the file is the whole system CA bundle), though sbm
// never uses TLS.
// Workloads run without it, as on a machine that does not set it; where this environment sets
// it, the changed-bands table adds rows with it, so its cost stays visible.
const extraCaCerts = process.env.NODE_EXTRA_CA_CERTS;
delete process.env.NODE_EXTRA_CA_CERTS;

async function main(): Promise<void> {
  const results: WorkloadResult[] = [];
  for (const [group, build] of Object.entries(GROUPS)) {
    if (only !== undefined && !only.includes(group)) continue;
    const dir = await mkdtemp(join(tmpdir(), 'sbm-bench-'));
    try {
      log(`preparing ${group} data in ${dir}`);
      for (const workload of await build({ dir, quick, extraCaCerts })) {
        log(`running ${workload.id} (at least ${runs} interleaved runs)`);
        try {
          results.push(await runWorkload(workload, runs, log));
          // Written after every workload: a run that fails later keeps what it measured.
          await writeFile(outPath, await renderReport(results));
        } finally {
          await workload.teardown?.();
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const report = await renderReport(results);
  await writeFile(outPath, report);
  process.stdout.write(report);
}

async function renderReport(results: WorkloadResult[]): Promise<string> {
  const qemu = (await execa('qemu-img', ['--version'], { reject: false })).stdout.split('\n')[0] ?? '';
  const notes = await readFile(join(REPO, 'scripts', 'bench', 'NOTES.md'), 'utf8').catch(() => '');
  return [
    '# Benchmarks',
    '',
    `Written by \`${shownCommand}\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores ` +
      `(${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${qemu}. ` +
      `Each variant ran ${runs} times (at least ${EXTRA_ROUNDS_MAX} when a round of the workload takes under ` +
      `${EXTRA_ROUNDS_BELOW_SECONDS} s), interleaved with its peers; ` +
      'times are wall-clock seconds, measured around GNU time ' +
      '(which records peak RSS and adds about a millisecond to every variant alike). ' +
      '"sbm time ÷ this" is sbm\'s median divided by this variant\'s median: below 1.00 sbm is faster. ' +
      (extraCaCerts === undefined
        ? 'NODE_EXTRA_CA_CERTS was not set.'
        : 'This machine sets NODE_EXTRA_CA_CERTS, which makes every Node start parse that certificate file; ' +
          'runs go without it, as on a machine that does not set it, and the changed-bands table shows its cost.'),
    '',
    '## Targets',
    '',
    ...renderTargets(results),
    '',
    '## Results',
    '',
    ...results.map(renderWorkload),
    notes,
  ].join('\n');
}

function renderTargets(results: WorkloadResult[]): string[] {
  const find = (id: string, label: string) =>
    results.find((result) => result.workload.id === id)?.results.find((variant) => variant.label.startsWith(label));
  const rows = ['| target | measured | met |', '|---|---|---|'];
  const ratioRow = (title: string, id: string, subject: string, peer: string, limit: number) => {
    const mine = find(id, subject);
    const theirs = find(id, peer);
    if (mine === undefined || theirs === undefined) return;
    const ratio = mine.secondsMedian / theirs.secondsMedian;
    rows.push(`| ${title} ≤ ${limit}× | ${ratio.toFixed(2)}× | ${ratio <= limit ? 'yes' : 'no'} |`);
  };
  for (const id of ['monolithicSparse', 'streamOptimized', 'qcow2', 'qcow2-compressed', 'vhdx', 'vdi']) {
    ratioRow(`convert ${id} vs qemu-img (never flushed)`, `convert-${id}`, 'sbm', QEMU_IMG_UNSAFE, 0.8);
    // sbm's bundle is durable when convert returns; qemu-img's raw file only with -t writeback.
    ratioRow(`convert ${id} vs qemu-img -t writeback (as durable as sbm)`, `convert-${id}`, 'sbm', QEMU_IMG_DURABLE, 0.8);
  }
  ratioRow('incremental backup vs cp of the changed bands', 'backup-incremental', 'sbm', 'cp', 1.2);
  for (const result of results.filter((each) => each.workload.id.startsWith('backup-incremental-'))) {
    const mine = result.results.find((variant) => variant.label === 'sbm backup');
    const peers = result.results.filter((variant) => (BACKUP_PEERS as readonly string[]).includes(variant.label));
    const fastest = peers.reduce<(typeof peers)[number] | undefined>(
      (best, each) => (best === undefined || each.secondsMedian < best.secondsMedian ? each : best),
      undefined,
    );
    if (mine === undefined || fastest === undefined) continue;
    const ratio = mine.secondsMedian / fastest.secondsMedian;
    rows.push(
      `| ${result.workload.id}: sbm vs the fastest peer (${fastest.label}) ≤ 0.1× | ` +
        `${ratio.toFixed(2)}× | ${ratio <= 0.1 ? 'yes' : 'no'} |`,
    );
  }
  for (const result of results.filter((each) => each.workload.id.startsWith('backup-s3-incremental-'))) {
    const id = result.workload.id;
    ratioRow(`${id}: sbm vs restic to the same gateway`, id, 'sbm backup', 'restic backup', 0.2);
    const mine = find(id, 'sbm backup')?.addedBytesMedian;
    const theirs = find(id, 'restic backup')?.addedBytesMedian;
    if (mine !== undefined && theirs !== undefined) {
      const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
      rows.push(`| ${id}: bytes stored by sbm ≤ restic's | ${mib(mine)} vs ${mib(theirs)} | ${mine <= theirs ? 'yes' : 'no'} |`);
    }
  }
  for (const id of [
    'nbd-seq-write',
    'nbd-seq-read',
    'nbd-rand-read',
    'nbd-rand-write',
    'nbd-fio-randread',
    'nbd-fio-randwrite',
    'nbd-fio-randrw',
  ]) {
    ratioRow(`${id}: sbm mount vs nbdkit`, id, 'sbm', 'nbdkit', 1.0);
    ratioRow(`${id}: sbm mount vs qemu-nbd`, id, 'sbm', 'qemu-nbd', 1.0);
  }
  const changed = find('changed-bands', 'sbm changed-bands (1 TiB, 10 changed');
  if (changed !== undefined) {
    rows.push(
      `| changed-bands on 1 TiB with 10 changes < 0.100 s | ${changed.secondsMedian.toFixed(3)} s | ` +
        `${changed.secondsMedian < 0.1 ? 'yes' : 'no'} |`,
    );
  }
  for (const result of results) {
    if (result.serverPeakRssMiB !== undefined) {
      const peak = result.serverPeakRssMiB;
      rows.push(
        `| peak RSS of the sbm mount server up to ${result.workload.id} < 256 MiB | ` +
          `${peak.toFixed(0)} MiB | ${peak < 256 ? 'yes' : 'no'} |`,
      );
    }
    for (const variant of result.results) {
      if (!variant.label.startsWith('sbm')) continue;
      rows.push(
        `| peak RSS of ${result.workload.id} (${variant.label}) < 256 MiB | ${variant.peakRssMiB.toFixed(0)} MiB | ` +
          `${variant.peakRssMiB < 256 ? 'yes' : 'no'} |`,
      );
    }
  }
  return rows;
}

await main();
