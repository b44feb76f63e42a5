// The worker pool and the band hasher on real worker threads. Run from TypeScript sources the
// pool never starts workers (tsx's loader does not reach them), so these tests load the compiled
// modules under dist/ (`npm test` builds them first).

import test from 'ava';
import { createHash, randomFillSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, tempDir } from '../helpers/tools.js';

type WorkerPoolModule = typeof import('../../lib/worker-pool.js');
type BandHasherModule = typeof import('../../lib/backup/band-hasher.js');

const compiled = async <T>(path: string): Promise<T> => (await import(pathToFileURL(join(REPO_ROOT, 'dist', path)).href)) as T;
const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

function sharedRandom(bytes: number): Buffer {
  return randomFillSync(Buffer.from(new SharedArrayBuffer(bytes)));
}

test('bands in shared memory are hashed on a worker, with the digests of the calling thread', async (t) => {
  const { sha256Of, hasherStats, prewarmHasher } = await compiled<BandHasherModule>('lib/backup/band-hasher.js');
  prewarmHasher();
  const deadline = Date.now() + 20_000;
  // Until the worker has started, the calling thread hashes (and says so in the stats).
  while (hasherStats.offloaded === 0 && Date.now() < deadline) {
    const band = sharedRandom(64 * 1024);
    t.is(await sha256Of(band), sha(band));
    await new Promise((resolve) => setTimeout(resolve, 10)); // the worker's "ready" is a message: give it a turn
  }
  t.true(hasherStats.offloaded > 0, 'a worker took a band');
  const bands = Array.from({ length: 6 }, () => sharedRandom(1024 * 1024));
  const before = { ...hasherStats };
  const digests = await Promise.all(bands.map((band) => sha256Of(band)));
  t.deepEqual(digests, bands.map(sha));
  t.true(hasherStats.inline > before.inline, 'the calling thread hashes what the busy worker cannot take');
  const inlineBefore = hasherStats.inline;
  const notShared = randomFillSync(Buffer.alloc(4096));
  t.is(await sha256Of(notShared), sha(notShared));
  t.is(hasherStats.inline, inlineBefore + 1, 'memory that is not shared is never cloned to a worker');
});

test("a job's error and a worker's death come back as errors; the pool goes on with a new worker", async (t) => {
  const { WorkerPool } = await compiled<WorkerPoolModule>('lib/worker-pool.js');
  const dir = await tempDir(t);
  const script = join(dir, 'worker.mjs');
  const poolModule = pathToFileURL(join(REPO_ROOT, 'dist', 'lib', 'worker-pool.js')).href;
  await writeFile(
    script,
    `import { serveJobs } from ${JSON.stringify(poolModule)};\n` +
      'serveJobs((n) => {\n' +
      '  if (n === 0) throw new Error("zero refused");\n' +
      '  if (n < 0) process.exit(3);\n' +
      '  return { reply: { twice: n * 2 } };\n' +
      '});\n',
  );
  const pool = new WorkerPool<number, { id: number; twice?: number; error?: string }>(pathToFileURL(script), 1, 'test');
  const submitted = async (n: number) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const reply = pool.submit(n);
      if (reply !== undefined) return reply;
      if (Date.now() > deadline) throw new Error('no worker became ready');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  t.is((await submitted(21)).twice, 42);
  t.is((await submitted(0)).error, 'zero refused');
  await t.throwsAsync(submitted(-1), { message: /^SBM_INTERNAL: test worker failed: exited with code 3/ });
  t.is((await submitted(5)).twice, 10, 'a new worker replaces the dead one');
});
