import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../../lib/errors.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';
import { WarningList } from '../../../lib/warnings.js';
import { tempDir } from '../../helpers/tools.js';

const MIB = 1024 * 1024;

async function newBundle(t: Parameters<typeof tempDir>[0]): Promise<{ path: string; bundle: SparseBundle }> {
  const path = join(await tempDir(t), 'vm.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 16 * MIB, bandSizeBytes: MIB });
  return { path, bundle };
}

test('token and changed-band reports over a deferred listing never list bands/ (sbm token / changed-bands stay O(changes))', async (t) => {
  const { path, bundle: creator } = await newBundle(t);
  await creator.write(3 * MIB, Buffer.from('three'));
  await creator.close();
  await writeFile(join(path, 'bands', 'stray.tmp'), 'x'); // listing bands/ would warn about it
  const warnings = new WarningList();
  const bundle = await SparseBundle.open(path, { deferBandListing: true, onWarning: warnings.sink });
  t.teardown(() => bundle.close());
  const session = new BundleSession(bundle);
  const token = await session.token();
  const report = await session.changedBands(token);
  const answer = await session.changedBandsSince(report.token as string);
  t.is(answer.sinceKind, 'token');
  t.deepEqual(answer.report.bands, []);
  t.deepEqual(
    warnings.items.map((w) => w.code),
    [],
    'bands/ was not listed',
  );
  t.deepEqual(bundle.bandsPresent(), [3]);
  t.deepEqual(
    warnings.items.map((w) => w.code),
    ['SBM_STRAY_FILE'],
    'the first question about bands listed them',
  );
});

test('the engine changes its band set only at a quiet point', async (t) => {
  const { path, bundle } = await newBundle(t);
  t.teardown(() => bundle.close());
  await bundle.write(0, Buffer.from('zero'));
  for (const call of [
    () => bundle.removeBand(0),
    () => bundle.replaceBand(0, join(path, 'Info.plist')),
    () => bundle.linkBandsInto(path),
    () => bundle.forgetLinkCounts(),
  ]) {
    const error = await t.throwsAsync(call());
    t.true(isSbmError(error, 'SBM_INTERNAL'), String(error));
  }
  t.deepEqual(bundle.bandsPresent(), [0], 'nothing changed');
  await bundle.withQuiescedIo(() => bundle.removeBand(0));
  t.deepEqual(bundle.bandsPresent(), []);
  t.true((await bundle.read(0, 4)).equals(Buffer.alloc(4)), 'a removed band reads as zeros');
});

test('--since resolves a token, a snapshot name and a time to the same kind of report', async (t) => {
  const { bundle } = await newBundle(t);
  t.teardown(() => bundle.close());
  const session = new BundleSession(bundle);
  const before = new Date(Date.now() - 1).toISOString();
  await bundle.write(MIB, Buffer.from('one'));
  const snapshot = await session.snapshots.create('daily');
  await bundle.write(2 * MIB, Buffer.from('two'));
  t.is((await session.resolveSince(snapshot.token)).kind, 'token');
  const bySnapshot = await session.changedBandsSince('daily');
  t.is(bySnapshot.sinceKind, 'snapshot');
  t.deepEqual(
    bySnapshot.report.bands.map((band) => band.bandIndex),
    [2],
  );
  const byTime = await session.changedBandsSince(before);
  t.is(byTime.sinceKind, 'time');
  t.deepEqual(
    byTime.report.bands.map((band) => band.bandIndex),
    [1, 2],
  );
  t.true(isSbmError(await t.throwsAsync(session.changedBandsSince('no-such-snapshot')), 'SBM_BAD_TOKEN'));
});
