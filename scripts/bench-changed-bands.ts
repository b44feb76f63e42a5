// Benchmark: `changed-bands` cost grows with the changes, not with the disk. Builds a 1 GiB and a
// 1 TiB (virtual) bundle with every band present (8 MiB bands: 128 vs 131,072 band files), takes
// a token, changes 10 bands, and times BundleSession.changedBands (library, default `auto` audit) and the CLI.
// For contrast it also times a forced full stat audit of each bundle. `openMs` is
// SparseBundle.open as the CLI does it (deferBandListing: bands/ is not listed; the tracker reads
// the log and the stat cache header, and checks only records after the trusted log point).
//
// usage: npx tsx scripts/bench-changed-bands.ts [bandsOfBigBundle=131072]   (run `npx tsc -p .`
// first for the CLI timings; the big bundle needs ~600 MB of disk for 4 KiB band files)

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SparseBundle } from '../lib/engine/sparse-bundle.js';
import { bandFileName } from '../lib/bundle/bundle-paths.js';
import { mapLimit } from '../lib/map-limit.js';
import { BundleSession } from '../lib/session/bundle-session.js';

const GiB = 1024 ** 3;
const TiB = 1024 ** 4;
const BAND = 8 * 1024 * 1024;
const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
const CLI = join(REPO, 'dist', 'cli', 'sbm.js');
const RUNS = 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function timed(run: () => Promise<unknown> | unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function build(path: string, sizeBytes: number, populate: number): Promise<string> {
  const bundle = await SparseBundle.create(path, { sizeBytes, bandSizeBytes: BAND });
  await bundle.close();
  // Band files written directly (as an import would leave them), then tracking starts afresh.
  const block = Buffer.alloc(4096, 0xab);
  await mapLimit(
    Array.from({ length: populate }, (_, index) => index),
    32,
    (index) => writeFile(join(path, 'bands', bandFileName(index)), block),
  );
  await rm(join(path, '.sbm', 'state'));
  const reopened = await SparseBundle.open(path); // new epoch: one baseline stat of every band
  const token = await new BundleSession(reopened).token();
  for (let change = 0; change < 10; change++) {
    const bandIndex = Math.floor(((change + 0.5) * populate) / 10);
    await reopened.write(bandIndex * BAND + 8192, Buffer.alloc(4096, change + 1));
  }
  await reopened.close();
  execFileSync('sync'); // let writeback of the freshly built bands finish before timing anything
  return token;
}

async function measure(label: string, path: string, token: string): Promise<Record<string, unknown>> {
  const open: number[] = [];
  const changed: number[] = [];
  const full: number[] = [];
  const cli: number[] = [];
  let reported = 0;
  let audit = '';
  for (let run = 0; run < RUNS; run++) {
    let bundle: SparseBundle | undefined;
    open.push(await timed(async () => (bundle = await SparseBundle.open(path, { deferBandListing: true }))));
    const opened = bundle as SparseBundle;
    changed.push(
      await timed(async () => {
        const report = await new BundleSession(opened).changedBands(token);
        reported = report.bands.length;
        audit = report.audit;
      }),
    );
    full.push(await timed(() => new BundleSession(opened).changedBands(token, { audit: 'full' })));
    await opened.close();
    if (existsSync(CLI))
      cli.push(await timed(() => execFileSync(process.execPath, [CLI, 'changed-bands', path, '--since', token], { stdio: 'pipe' })));
  }
  return {
    bundle: label,
    bandsReported: reported,
    audit,
    openMs: median(open).toFixed(1),
    changedBandsMs: median(changed).toFixed(1),
    fullAuditMs: median(full).toFixed(1),
    cliMs: cli.length > 0 ? median(cli).toFixed(1) : 'n/a (run npx tsc -p .)',
  };
}

const bigBands = Number(process.argv[2] ?? TiB / BAND);
const dir = await mkdtemp(join(tmpdir(), 'sbm-bench-'));
try {
  const rows = [];
  const small = join(dir, 'one-gib.sparsebundle');
  rows.push(await measure(`1 GiB, ${GiB / BAND} bands present`, small, await build(small, GiB, GiB / BAND)));
  const big = join(dir, 'one-tib.sparsebundle');
  const started = Date.now();
  const bigToken = await build(big, TiB, bigBands);
  process.stderr.write(`built the 1 TiB bundle (${bigBands} band files) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  rows.push(await measure(`1 TiB, ${bigBands} bands present`, big, bigToken));
  console.table(rows);
} finally {
  await rm(dir, { recursive: true, force: true });
}
