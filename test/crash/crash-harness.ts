// SIGKILL loop around crash-child.ts. Each round: spawn the child on the bundle, kill it at a
// random moment, then check, in this process:
//   - `checkBundle` finds no problems (bands/ holds only bands) and the bundle opens;
//   - every write announced before a FLUSHED line reads back, and bytes no announced operation
//     touched are unchanged (bytes of operations after the last flush may be old, new or mixed);
//     a finished revert leaves exactly the snapshot's content;
//   - for every token we hold the band hashes of, session.changedBands(token) ⊇ bands whose file changed;
//   - every snapshot hashes as it did when taken (and none vanished without a DELETING line);
//   - no tracking reset happened (a crash must never cost the user a full backup), except in
//     rounds where the harness damaged the tracker's files after the kill (damage-tracker.ts):
//     there old tokens may be refused (exit 10), but an answer must still never under-report.

import { spawn } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { checkBundle } from '../../lib/bundle/check-bundle.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../lib/errors.js';
import { DAMAGE_KINDS, damageTracker, keepTrackerCopies } from './damage-tracker.js';
import { WarningList } from '../../lib/warnings.js';
import { REPO_ROOT, seededBytes } from '../helpers/tools.js';
import { type BandHashes, changedBetween, hashBands, hashBundle, rng } from '../lib/tracking/band-oracle.js';
import { BundleSession } from '../../lib/session/bundle-session.js';

export interface CrashRunOptions {
  readonly bundlePath: string;
  readonly rounds: number;
  readonly seed: number;
  /** Longest time the child runs before the kill, in ms (after it reports READY). */
  readonly maxRunMs: number;
  /** Share of rounds (0..1) whose tracker files are damaged after the kill; 0 by default. */
  readonly damageRate?: number;
  /** Start no new round after this many ms (rounds still caps the count): keeps a loaded CI run inside its timeout. */
  readonly timeBudgetMs?: number;
  /** Rounds that run even when the time budget is spent (so a slow machine still checks as many). */
  readonly minRounds?: number;
  readonly log?: (line: string) => void;
}

export interface CrashRunSummary {
  rounds: number;
  operationsAnnounced: number;
  flushedOperations: number;
  tokensChecked: number;
  /** Tokens refused with exit 10 after damage (allowed: a full backup instead of a wrong list). */
  tokensRefused: number;
  damagedRounds: number;
  snapshotsChecked: number;
  overReportedBands: number;
  exactBands: number;
  revertsFinished: number;
  revertsInterrupted: number;
}

const CHILD = join(REPO_ROOT, 'test', 'crash', 'crash-child.ts');
const MiB = 1024 * 1024;

export async function createCrashBundle(path: string): Promise<void> {
  const bundle = await SparseBundle.create(path, { sizeBytes: 16 * MiB, bandSizeBytes: MiB });
  await bundle.close();
}

export async function runCrashRounds(options: CrashRunOptions): Promise<CrashRunSummary> {
  const { bundlePath } = options;
  const random = rng(options.seed);
  const summary: CrashRunSummary = {
    rounds: 0,
    operationsAnnounced: 0,
    flushedOperations: 0,
    tokensChecked: 0,
    tokensRefused: 0,
    damagedRounds: 0,
    snapshotsChecked: 0,
    overReportedBands: 0,
    exactBands: 0,
    revertsFinished: 0,
    revertsInterrupted: 0,
  };
  const tokens: Array<{ token: string; hashes: BandHashes }> = [];
  const snapshotHashes = new Map<string, string>();
  const copiesDir = `${bundlePath}.tracker-copies`;
  await mkdir(copiesDir, { recursive: true });
  let model: Buffer;
  {
    const bundle = await SparseBundle.open(bundlePath);
    model = await bundle.read(0, bundle.sizeBytes);
    tokens.push({ token: await new BundleSession(bundle).token(), hashes: await hashBands(bundlePath) });
    await bundle.close();
    await keepTrackerCopies(bundlePath, copiesDir);
  }
  const stopAt = options.timeBudgetMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeBudgetMs;
  // The first minRounds always run, however slow the machine; the time budget only ends the rest.
  const minRounds = Math.min(options.minRounds ?? 0, options.rounds);
  for (let round = 0; round < options.rounds && (round < minRounds || Date.now() < stopAt); round++) {
    const where = `round ${round} (seed ${options.seed})`;
    const childSeed = options.seed * 1000 + round + 1;
    const lines = await runChild(bundlePath, childSeed, 20 + random(options.maxRunMs));
    const events = lines.map((line) => line.split(' '));
    // Besides the random share, every fifth round is damaged, so a short run on a loaded machine still damages some.
    const rate = options.damageRate ?? 0;
    const damaged = random(1000) < rate * 1000 || (rate > 0 && round % 5 === 2);
    const damage = damaged ? DAMAGE_KINDS[random(DAMAGE_KINDS.length)] : undefined;
    if (damage !== undefined) {
      await damageTracker(bundlePath, copiesDir, damage);
      summary.damagedRounds++;
    }
    // 1. structure
    const check = await checkBundle(bundlePath);
    if (check.problems.length > 0) throw new Error(`${where}: sbm check: ${JSON.stringify(check.problems)}`);
    const warnings = new WarningList();
    const bundle = await SparseBundle.open(bundlePath, { onWarning: warnings.sink });
    try {
      const reset = warnings.items.find((warning) => warning.code === 'SBM_TRACKING_RESET');
      if (reset !== undefined && damage === undefined) throw new Error(`${where}: tracking was reset by a crash: ${reset.message}`);
      // 2. flushed writes
      const ops = events.filter((event) => event[0] === 'OP');
      const flushed = Math.max(0, ...events.filter((event) => event[0] === 'FLUSHED').map((event) => Number(event[1])));
      summary.operationsAnnounced += ops.length;
      summary.flushedOperations += flushed;
      let expected: Buffer = Buffer.from(model);
      const uncertain = Buffer.alloc(model.length);
      let opIndex = 0;
      let revertInterrupted = false;
      for (const event of events) {
        if (event[0] === 'OP') {
          const offset = Number(event[2]);
          const length = Number(event[3]);
          if (opIndex++ >= flushed) {
            uncertain.fill(1, offset, offset + length);
          } else if (event[1] === 'w') {
            seededBytes(length, Number(event[4])).copy(expected, offset);
          } else {
            expected.fill(0, offset, offset + length);
          }
        } else if (event[0] === 'REVERTING') {
          revertInterrupted = true;
        } else if (event[0] === 'REVERTED') {
          // A finished revert is durable and leaves exactly the snapshot's content.
          revertInterrupted = false;
          summary.revertsFinished++;
          const snapshotPath = new BundleSession(bundle).snapshots.pathOf(event[1] as string);
          const frozen = await SparseBundle.open(snapshotPath, { readOnly: true }).catch(() => undefined);
          if (frozen === undefined) {
            revertInterrupted = true; // deleted later in the round: content unknown here
            continue;
          }
          expected = await frozen.read(0, frozen.sizeBytes);
          await frozen.close();
          uncertain.fill(0);
        }
      }
      // A revert cut short leaves each band either as it was or as in the snapshot.
      if (revertInterrupted) {
        uncertain.fill(1);
        summary.revertsInterrupted++;
      }
      const disk = await bundle.read(0, bundle.sizeBytes);
      // Where the outcome is uncertain, take the disk's bytes; then the whole image must match.
      for (let index = uncertain.indexOf(1); index !== -1; ) {
        const end = uncertain.indexOf(0, index);
        const stop = end === -1 ? disk.length : end;
        disk.copy(expected, index, index, stop);
        index = end === -1 ? -1 : uncertain.indexOf(1, end);
      }
      if (!expected.equals(disk)) {
        let index = 0;
        while (disk[index] === expected[index]) index++;
        throw new Error(`${where}: byte ${index} reads ${disk[index]}, expected ${expected[index]} (flushed or untouched)`);
      }
      model = disk;
      // 3. tokens: superset of the truly changed bands
      for (const event of events.filter((item) => item[0] === 'TOKEN')) {
        tokens.push({ token: event[1] as string, hashes: new Map(JSON.parse(event.slice(2).join(' ')) as Array<[number, string]>) });
      }
      const now = await hashBands(bundlePath);
      for (const { token, hashes } of tokens.slice(-6)) {
        const report = await new BundleSession(bundle).changedBands(token, { audit: 'full' }).catch((error: unknown) => {
          if (isSbmError(error) && error.exitCode === 10) return undefined;
          throw new Error(`${where}${damage === undefined ? '' : ` (${damage})`}: token ${token}: ${String(error)}`);
        });
        if (report === undefined) {
          summary.tokensRefused++;
          continue;
        }
        const reported = new Set(report.bands.map((band) => band.bandIndex));
        const truth = changedBetween(hashes, now);
        const missed = truth.filter((band) => !reported.has(band));
        if (missed.length > 0)
          throw new Error(
            `${where}${damage === undefined ? '' : ` (${damage})`}: token ${token} under-reports bands ${missed.join(', ')} ` +
              `(reported ${[...reported].join(', ')})`,
          );
        summary.tokensChecked++;
        summary.exactBands += truth.length;
        summary.overReportedBands += reported.size - truth.length;
      }
      tokens.push({ token: await new BundleSession(bundle).token(), hashes: now });
      // 4. snapshots never change
      const deleting = new Set(events.filter((event) => event[0] === 'DELETING').map((event) => event[1] as string));
      for (const event of events.filter((item) => item[0] === 'SNAP')) snapshotHashes.set(event[1] as string, event[2] as string);
      const present = new Set(
        (await readdir(new BundleSession(bundle).snapshots.directory).catch(() => [] as string[])).map((name) =>
          name.replace(/\.sparsebundle$/, ''),
        ),
      );
      for (const [name, hash] of snapshotHashes) {
        if (!present.has(name)) {
          if (!deleting.has(name)) throw new Error(`${where}: snapshot ${name} vanished without being deleted`);
          snapshotHashes.delete(name);
          continue;
        }
        const actual = await hashBundle(new BundleSession(bundle).snapshots.pathOf(name));
        if (actual !== hash) throw new Error(`${where}: snapshot ${name} changed after it was taken`);
        summary.snapshotsChecked++;
      }
      for (const name of present)
        if (!snapshotHashes.has(name)) snapshotHashes.set(name, await hashBundle(new BundleSession(bundle).snapshots.pathOf(name)));
    } finally {
      await bundle.close();
    }
    await keepTrackerCopies(bundlePath, copiesDir);
    summary.rounds++;
    options.log?.(
      `${where}: ${events.filter((event) => event[0] === 'OP').length} ops, ${tokens.length} tokens, ` +
        `${snapshotHashes.size} snapshots${damage === undefined ? '' : `, ${damage}`}`,
    );
  }
  return summary;
}

/** Runs the child until `runMs` after READY, SIGKILLs it, returns its complete stdout lines. */
async function runChild(bundlePath: string, seed: number, runMs: number): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, bundlePath, String(seed)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let timer: NodeJS.Timeout | undefined;
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout.on('data', (chunk: string) => {
    const ready = !stdout.includes('READY\n') && (stdout + chunk).includes('READY\n');
    stdout += chunk;
    if (ready) timer = setTimeout(() => child.kill('SIGKILL'), runMs);
  });
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  // Let the pipe drain: the kernel keeps what the child wrote before it died.
  await new Promise<void>((resolve) => (child.stdout.readableEnded ? resolve() : child.stdout.on('end', () => resolve())));
  if (timer !== undefined) clearTimeout(timer);
  if (exit.signal !== 'SIGKILL') throw new Error(`crash child exited by itself (code ${exit.code}): ${stderr.slice(-2000)}`);
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  return complete.split('\n').filter((line) => line.length > 0);
}
