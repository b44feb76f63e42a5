import test from 'ava';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../../lib/errors.js';
import { WarningList } from '../../../lib/warnings.js';
import { tempDir } from '../../helpers/tools.js';
import { changedBetween, hashBands, rng } from './band-oracle.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';

const MiB = 1024 * 1024;

/** Random bytes with no zero byte, so every write really changes what it covers. */
function noise(length: number): Buffer {
  const data = randomBytes(length);
  for (let index = 0; index < length; index++) if (data[index] === 0) data[index] = 1;
  return data;
}

test('exactness: the reported set equals the bands whose files changed, over many rounds and reopens', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'disk.sparsebundle');
  const sizeBytes = 48 * MiB;
  let bundle = await SparseBundle.create(path, { sizeBytes, bandSizeBytes: MiB });
  const model = Buffer.alloc(sizeBytes); // what the disk should read as
  const random = rng(20261123);
  let token = await new BundleSession(bundle).token();
  let before = await hashBands(path);
  for (let round = 0; round < 40; round++) {
    const operations = 1 + random(12);
    for (let op = 0; op < operations; op++) {
      const offset = random(sizeBytes - 1);
      const length = 1 + random(Math.min(3 * MiB, sizeBytes - offset) - 1 || 1);
      const kind = random(10);
      if (kind < 7) {
        const data = noise(length);
        await bundle.write(offset, data);
        data.copy(model, offset);
      } else {
        // Zeroing only changes a band when its part of the range holds data: keep to those,
        // so "no extras" stays a fair requirement (zeroing zeros is a no-op to the oracle).
        let allSegmentsHaveData = true;
        for (let start = offset; start < offset + length; start = (Math.floor(start / MiB) + 1) * MiB) {
          const end = Math.min(offset + length, (Math.floor(start / MiB) + 1) * MiB);
          if (model.subarray(start, end).every((byte) => byte === 0)) allSegmentsHaveData = false;
        }
        if (!allSegmentsHaveData) continue;
        if (kind === 7) await bundle.writeZeroes(offset, length);
        else await bundle.trim(offset, length);
        model.fill(0, offset, offset + length);
      }
    }
    if (random(4) === 0) {
      await bundle.close();
      bundle = await SparseBundle.open(path);
    }
    const report = await new BundleSession(bundle).changedBands(token, { audit: 'full' });
    const after = await hashBands(path);
    const truth = changedBetween(before, after);
    t.deepEqual(
      report.bands.map((band) => band.bandIndex),
      truth,
      `round ${round}`,
    );
    for (const band of report.bands) t.is(band.deleted, !after.has(band.bandIndex), `round ${round} band ${band.bandIndex} deleted flag`);
    t.is(report.totalBytes, truth.length * MiB);
    t.false(report.bands.some((band) => band.foreign));
    t.truthy(report.token);
    token = report.token as string;
    before = after;
  }
  t.true((await bundle.read(0, sizeBytes)).equals(model), 'disk content matches the model');
  await bundle.close();
});

test('token() with no writes in between reports nothing; a write reports exactly its bands', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'disk.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 16 * MiB, bandSizeBytes: MiB });
  t.teardown(() => bundle.close());
  const first = await new BundleSession(bundle).token();
  t.regex(first, /^sbm1:[0-9a-f-]{36}:[0-9a-f]{8}:\d+$/);
  const second = await new BundleSession(bundle).token();
  t.deepEqual((await new BundleSession(bundle).changedBands(first)).bands, []);
  await bundle.write(MiB - 10, noise(20)); // straddles bands 0 and 1
  const report = await new BundleSession(bundle).changedBands(second);
  t.deepEqual(
    report.bands.map((band) => [band.bandIndex, band.relativePath, band.offset, band.length, band.deleted]),
    [
      [0, 'bands/0', 0, MiB, false],
      [1, 'bands/1', MiB, MiB, false],
    ],
  );
  // The older token still sees the same changes; the returned token sees none.
  t.deepEqual(
    (await new BundleSession(bundle).changedBands(first)).bands.map((band) => band.bandIndex),
    [0, 1],
  );
  t.deepEqual((await new BundleSession(bundle).changedBands(report.token as string)).bands, []);
});

test('foreign, stale and future tokens are refused with their own codes', async (t) => {
  const dir = await tempDir(t);
  const a = await SparseBundle.create(join(dir, 'a.sparsebundle'), { sizeBytes: 8 * MiB, bandSizeBytes: MiB });
  const b = await SparseBundle.create(join(dir, 'b.sparsebundle'), { sizeBytes: 8 * MiB, bandSizeBytes: MiB });
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const tokenA = await new BundleSession(a).token();
  const foreign = await t.throwsAsync(new BundleSession(b).changedBands(tokenA));
  t.true(isSbmError(foreign, 'SBM_TOKEN_FOREIGN'), String(foreign));
  t.regex(String(foreign?.message), /full backup required/);
  const [prefix, id, epoch, generation] = tokenA.split(':');
  const future = await t.throwsAsync(new BundleSession(a).changedBands([prefix, id, epoch, Number(generation) + 5].join(':')));
  t.true(isSbmError(future, 'SBM_TOKEN_FUTURE'), String(future));
  const stale = await t.throwsAsync(new BundleSession(a).changedBands([prefix, id, 'deadbeef', generation].join(':')));
  t.true(isSbmError(stale, 'SBM_TOKEN_STALE'), String(stale));
  const bad = await t.throwsAsync(new BundleSession(a).changedBands('not-a-token'));
  t.true(isSbmError(bad, 'SBM_BAD_TOKEN'), String(bad));
});

test('a copied bundle folder starts a new epoch: tokens of the original are stale there', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'a.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 8 * MiB, bandSizeBytes: MiB });
  await bundle.write(0, noise(100));
  const token = await new BundleSession(bundle).token();
  await bundle.close();
  const { cp } = await import('node:fs/promises');
  await cp(path, join(dir, 'copy.sparsebundle'), { recursive: true });
  const warnings = new WarningList();
  const copy = await SparseBundle.open(join(dir, 'copy.sparsebundle'), { onWarning: warnings.sink });
  t.teardown(() => copy.close());
  t.true(warnings.items.some((warning) => warning.code === 'SBM_TRACKING_RESET'));
  const error = await t.throwsAsync(new BundleSession(copy).changedBands(token));
  t.true(isSbmError(error, 'SBM_TOKEN_STALE'), String(error));
  t.regex(String(error?.message), /copied/);
  // The original still answers.
  const original = await SparseBundle.open(path);
  t.teardown(() => original.close());
  t.deepEqual((await new BundleSession(original).changedBands(token)).bands, []);
});
