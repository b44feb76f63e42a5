import test from 'ava';
import { join } from 'node:path';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';

// Small reads and writes of an open band are issued synchronously (no thread-pool round trip), so
// a loop of them settles entirely in microtasks; the per-turn budget must still let timers run.
for (const kind of ['read', 'write'] as const) {
  test(`a tight loop of small ${kind}s still lets timers run`, async (t) => {
    const dir = await tempDir(t);
    const bundle = await SparseBundle.create(join(dir, 'loop.sparsebundle'), { sizeBytes: 4 * 1024 * 1024, bandSizeBytes: 1024 * 1024 });
    t.teardown(() => bundle.close());
    const data = seededBytes(4096, 7);
    await bundle.write(0, data);
    let fired = false;
    setTimeout(() => (fired = true), 5);
    const target = Buffer.alloc(4096);
    let rounds = 0;
    for (; !fired && rounds < 2_000_000; rounds++) {
      if (kind === 'read') await bundle.readInto(0, target);
      else await bundle.write((rounds % 256) * 4096, data);
    }
    t.true(fired, `the timer never ran during ${rounds} ${kind}s`);
    t.deepEqual(await bundle.read(0, 4096), data);
  });
}
