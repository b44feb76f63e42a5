// Long SIGKILL stress run of the change tracker, engine and snapshots (the crash test's loop for
// longer). usage: npx tsx scripts/stress-crash.ts [rounds=500] [seed=now] [maxRunMs=600] [damageRate=0.1]
// damageRate: share of rounds whose tracker files (.sbm/changes.log, .sbm/stat-cache) are
// damaged after the kill; refused tokens then count as fine, under-reports never do.
// Exits non-zero on the first violation; the seed in the message reproduces it.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCrashBundle, runCrashRounds } from '../test/crash/crash-harness.js';

const rounds = Number(process.argv[2] ?? 500);
const seed = Number(process.argv[3] ?? Date.now() % 1_000_000);
const maxRunMs = Number(process.argv[4] ?? 600);
const damageRate = Number(process.argv[5] ?? 0.1);
const dir = await mkdtemp(join(tmpdir(), 'sbm-stress-'));
const started = Date.now();
try {
  const bundlePath = join(dir, 'stress.sparsebundle');
  await createCrashBundle(bundlePath);
  const summary = await runCrashRounds({
    bundlePath,
    rounds,
    seed,
    maxRunMs,
    damageRate,
    log: (line) => process.stderr.write(`${((Date.now() - started) / 1000).toFixed(1)}s ${line}\n`),
  });
  process.stdout.write(`${JSON.stringify({ seed, seconds: (Date.now() - started) / 1000, ...summary })}\n`);
} catch (error) {
  process.stderr.write(`stress-crash FAILED (seed ${seed}): ${(error as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
