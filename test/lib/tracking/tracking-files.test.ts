import test from 'ava';
import { join } from 'node:path';
import { appendFile, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../../lib/errors.js';
import { WarningList } from '../../../lib/warnings.js';
import { tempDir } from '../../helpers/tools.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';

const MiB = 1024 * 1024;

async function bundleWithHistory(t: Parameters<typeof tempDir>[0]): Promise<{ path: string; token: string }> {
  const path = join(await tempDir(t), 'disk.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 8 * MiB, bandSizeBytes: MiB });
  const token = await new BundleSession(bundle).token();
  for (let band = 0; band < 4; band++) await bundle.write(band * MiB, Buffer.alloc(100, band + 1));
  await bundle.close();
  return { path, token };
}

test('a torn tail of changes.log is tolerated: no reset, every complete record still counts', async (t) => {
  const { path, token } = await bundleWithHistory(t);
  await appendFile(join(path, '.sbm', 'changes.log'), Buffer.from('half a rec'));
  const warnings = new WarningList();
  const bundle = await SparseBundle.open(path, { onWarning: warnings.sink });
  t.teardown(() => bundle.close());
  t.false(warnings.items.some((warning) => warning.code === 'SBM_TRACKING_RESET'));
  t.deepEqual(
    (await new BundleSession(bundle).changedBands(token)).bands.map((band) => band.bandIndex),
    [0, 1, 2, 3],
  );
  t.is((await stat(join(path, '.sbm', 'changes.log'))).size % 32, 0, 'the tail was cut at a record boundary');
});

test('a damaged changes.log resets tracking: old tokens are refused as stale, never answered', async (t) => {
  const { path, token } = await bundleWithHistory(t);
  const log = join(path, '.sbm', 'changes.log');
  const bytes = await readFile(log);
  bytes.writeUInt32LE((bytes.readUInt32LE(8) ^ 1) >>> 0, 8); // first record's epoch tag: checksum fails
  await writeFile(log, bytes);
  const warnings = new WarningList();
  const bundle = await SparseBundle.open(path, { onWarning: warnings.sink });
  t.teardown(() => bundle.close());
  t.true(warnings.items.some((warning) => warning.code === 'SBM_TRACKING_RESET'));
  const error = await t.throwsAsync(new BundleSession(bundle).changedBands(token));
  t.true(isSbmError(error, 'SBM_TOKEN_STALE'), String(error));
  t.regex(String(error?.message), /change log damaged/);
});

test('a lost stat cache or state file also refuses old tokens', async (t) => {
  const first = await bundleWithHistory(t);
  await rm(join(first.path, '.sbm', 'stat-cache'));
  const a = await SparseBundle.open(first.path);
  t.teardown(() => a.close());
  t.true(isSbmError(await t.throwsAsync(new BundleSession(a).changedBands(first.token)), 'SBM_TOKEN_STALE'));
  const second = await bundleWithHistory(t);
  await rm(join(second.path, '.sbm', 'state'));
  const b = await SparseBundle.open(second.path);
  t.teardown(() => b.close());
  t.true(isSbmError(await t.throwsAsync(new BundleSession(b).changedBands(second.token)), 'SBM_TOKEN_FOREIGN'));
});

test('a crash after the change record but before the write only over-reports', async (t) => {
  const { path, token } = await bundleWithHistory(t);
  // A record for band 6 made durable, then the band write never happened (the process died).
  const bundle = await SparseBundle.open(path);
  await bundle.changeTracker.beforeChange(6);
  await bundle.close();
  const reopened = await SparseBundle.open(path);
  t.teardown(() => reopened.close());
  const report = await new BundleSession(reopened).changedBands(token);
  t.deepEqual(
    report.bands.map((band) => [band.bandIndex, band.deleted]),
    [
      [0, false],
      [1, false],
      [2, false],
      [3, false],
      [6, true],
    ],
  );
});

test('read-only opens answer changedBands without issuing a token', async (t) => {
  const { path, token } = await bundleWithHistory(t);
  const bundle = await SparseBundle.open(path, { readOnly: true });
  t.teardown(() => bundle.close());
  const report = await new BundleSession(bundle).changedBands(token);
  t.deepEqual(
    report.bands.map((band) => band.bandIndex),
    [0, 1, 2, 3],
  );
  t.is(report.token, undefined);
  t.true(isSbmError(await t.throwsAsync(new BundleSession(bundle).token()), 'SBM_READ_ONLY'));
});
