import test from 'ava';
import { join } from 'node:path';
import { tempDir } from '../helpers/tools.js';
import { createCrashBundle, runCrashRounds } from './crash-harness.js';

// 20 to 50 SIGKILL rounds at random moments (the first 20 always, more as fit in 80 s, so the
// assertions never depend on how loaded the machine is), a fifth followed by damage to the tracker's files;
// scripts/stress-crash.ts runs the same loop for longer.
test(
  'SIGKILL at random moments (and damaged tracker files) never loses flushed writes, ' + 'never under-reports, never changes a snapshot',
  async (t) => {
    t.timeout(600_000);
    const dir = await tempDir(t);
    const bundlePath = join(dir, 'crash.sparsebundle');
    await createCrashBundle(bundlePath);
    const summary = await runCrashRounds({
      bundlePath,
      rounds: 50,
      minRounds: 20,
      seed: Date.now() % 100_000,
      maxRunMs: 300,
      damageRate: 0.2,
      timeBudgetMs: 80_000,
    });
    t.log(JSON.stringify(summary));
    t.true(summary.rounds >= 20, `${summary.rounds} rounds ran`);
    t.true(summary.operationsAnnounced > 0, 'the child did work before it was killed');
    t.true(summary.tokensChecked + summary.tokensRefused >= summary.rounds);
    t.true(summary.tokensChecked >= summary.rounds / 2, 'most tokens are answered, not refused');
    t.true(summary.damagedRounds > 0, 'some rounds damaged the tracker files');
    t.true(summary.snapshotsChecked > 0, 'some snapshot was checked after a later crash');
    t.true(summary.revertsFinished + summary.revertsInterrupted > 0, 'reverts ran under the kill loop');
  },
);
