import test from 'ava';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';

// Early band syncs (SparseBundle.flushBands -> BandStore.syncBands): a synced band is not synced
// again by flush(), a failed early sync is retried by flush(), and flush() waits for early syncs
// still running. fdatasync is observed by wrapping FileHandle.prototype.datasync.

const BAND = 1024 * 1024;

interface Spy {
  /** Band file paths (by fd) in the order they were fdatasynced. */
  readonly calls: string[];
  /** The next datasync fails, or waits for `gate` before running (once each). */
  failNext: boolean;
  gate: Promise<void> | undefined;
}

async function spyOnDatasync(t: import('ava').ExecutionContext, dir: string): Promise<Spy> {
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { datasync: (this: { fd: number }) => Promise<void> };
  await probe.close();
  const original = proto.datasync;
  const spy: Spy = { calls: [], failNext: false, gate: undefined };
  proto.datasync = async function (this: { fd: number }) {
    if (spy.failNext) {
      spy.failNext = false;
      throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
    }
    const gate = spy.gate;
    spy.gate = undefined; // only the next call waits
    if (gate !== undefined) await gate;
    spy.calls.push(String(this.fd));
    return original.call(this);
  };
  t.teardown(() => {
    proto.datasync = original;
  });
  return spy;
}

async function bundleWithThreeBands(t: import('ava').ExecutionContext, dir: string): Promise<SparseBundle> {
  const bundle = await SparseBundle.create(join(dir, 'b.sparsebundle'), { sizeBytes: 4 * BAND, bandSizeBytes: BAND, untracked: true });
  t.teardown(() => bundle.close());
  for (let band = 0; band < 3; band++) await bundle.write(band * BAND + 100, seededBytes(200_000, band + 1));
  return bundle;
}

test.serial('a band synced early is not synced again by flush()', async (t) => {
  const dir = await tempDir(t);
  const bundle = await bundleWithThreeBands(t, dir);
  const spy = await spyOnDatasync(t, dir);
  await bundle.flushBands(0, BAND);
  t.is(spy.calls.length, 1);
  await bundle.flush();
  t.is(spy.calls.length, 3, 'flush syncs bands 1 and 2 only');
  await bundle.flushBands(0, 3 * BAND);
  t.is(spy.calls.length, 3, 'nothing is dirty any more');
  // A write after the early sync makes the band dirty again.
  await bundle.write(5, seededBytes(10, 9));
  await bundle.flush();
  t.is(spy.calls.length, 4);
});

test.serial('a failed early sync leaves its band dirty for flush()', async (t) => {
  const dir = await tempDir(t);
  const bundle = await bundleWithThreeBands(t, dir);
  const spy = await spyOnDatasync(t, dir);
  spy.failNext = true;
  await t.throwsAsync(bundle.flushBands(BAND, BAND), { message: /EIO/ });
  t.is(spy.calls.length, 0);
  await bundle.flush();
  t.is(spy.calls.length, 3, 'flush syncs all three bands, the failed one included');
});

test.serial('flush() waits for early syncs still running', async (t) => {
  const dir = await tempDir(t);
  const bundle = await bundleWithThreeBands(t, dir);
  const spy = await spyOnDatasync(t, dir);
  let release: () => void = () => undefined;
  spy.gate = new Promise<void>((resolve) => (release = resolve));
  t.teardown(() => release()); // never leave the bundle's close waiting on the gate
  const early = bundle.flushBands(0, BAND);
  let flushed = false;
  const flushing = bundle.flush().then(() => (flushed = true));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const flushedEarly = flushed;
  release();
  t.false(flushedEarly, 'flush resolved while an early sync was still running');
  await early;
  await flushing;
  t.true(flushed);
  t.is(spy.calls.length, 3);
});
