import test from 'ava';
import { join } from 'node:path';
import { open, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { WarningList } from '../../../lib/warnings.js';
import { tempDir } from '../../helpers/tools.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';

const MiB = 1024 * 1024;

async function makeBundle(t: Parameters<typeof tempDir>[0]): Promise<{ path: string; token: string }> {
  const dir = await tempDir(t);
  const path = join(dir, 'disk.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 8 * MiB, bandSizeBytes: MiB });
  for (let band = 0; band < 6; band++) await bundle.write(band * MiB, Buffer.alloc(4096, band + 1));
  const token = await new BundleSession(bundle).token();
  await bundle.close();
  return { path, token };
}

test("a band rewritten in place behind sbm's back, mtime restored, is reported with a warning (full audit)", async (t) => {
  const { path, token } = await makeBundle(t);
  const band = join(path, 'bands', '3');
  const before = await stat(band);
  const handle = await open(band, 'r+');
  await handle.write(Buffer.alloc(16, 0xee), 0, 16, 100);
  await handle.close();
  await utimes(band, before.atime, before.mtime); // hide the edit from mtime: ctime still moves
  const warnings = new WarningList();
  const bundle = await SparseBundle.open(path, { onWarning: warnings.sink });
  t.teardown(() => bundle.close());
  const report = await new BundleSession(bundle).changedBands(token, { audit: 'full' });
  t.deepEqual(
    report.bands.map((entry) => [entry.bandIndex, entry.foreign]),
    [[3, true]],
  );
  const warning = warnings.items.find((item) => item.code === 'SBM_FOREIGN_CHANGE');
  t.truthy(warning);
  t.regex(String(warning?.message), /bands\/3/);
  // The foreign change is now part of the history: reported for the old token, not the new one.
  t.deepEqual(
    (await new BundleSession(bundle).changedBands(token)).bands.map((entry) => entry.bandIndex),
    [3],
  );
  t.deepEqual((await new BundleSession(bundle).changedBands(report.token as string)).bands, []);
});

test('auto audit stats every band of a small bundle, so in-place edits are caught by default', async (t) => {
  const { path, token } = await makeBundle(t);
  const handle = await open(join(path, 'bands', '1'), 'r+');
  await handle.write(Buffer.from('x'), 0);
  await handle.close();
  const bundle = await SparseBundle.open(path);
  t.teardown(() => bundle.close());
  const report = await new BundleSession(bundle).changedBands(token);
  t.is(report.audit, 'full');
  t.deepEqual(
    report.bands.map((entry) => entry.bandIndex),
    [1],
  );
});

test("directory audit: bands created, deleted or renamed over behind sbm's back are caught via bands/ mtime", async (t) => {
  const { path, token } = await makeBundle(t);
  const replacement = join(path, '..', 'replacement');
  await writeFile(replacement, Buffer.alloc(4096, 0x55));
  await rename(replacement, join(path, 'bands', '2')); // rsync/editor style: new inode
  await rm(join(path, 'bands', '4'));
  await writeFile(join(path, 'bands', '7'), Buffer.alloc(10, 9));
  const bundle = await SparseBundle.open(path);
  t.teardown(() => bundle.close());
  const report = await new BundleSession(bundle).changedBands(token, { audit: 'directory' });
  t.is(report.audit, 'full', 'the changed bands/ folder forced a full audit');
  t.deepEqual(
    report.bands.map((entry) => [entry.bandIndex, entry.deleted, entry.foreign]),
    [
      [2, false, true],
      [4, true, true],
      [7, false, true],
    ],
  );
});

test('directory audit with an unchanged bands/ folder stats nothing (the documented trade-off)', async (t) => {
  const { path, token } = await makeBundle(t);
  const bundle = await SparseBundle.open(path);
  t.teardown(() => bundle.close());
  await bundle.write(5 * MiB, Buffer.alloc(10, 0x77)); // in place: bands/ itself does not change
  const report = await new BundleSession(bundle).changedBands(token, { audit: 'directory' });
  t.is(report.audit, 'directory');
  t.deepEqual(
    report.bands.map((entry) => entry.bandIndex),
    [5],
  );
});

test('auto audit on a bundle opened without listing bands/ counts bands from the stat cache', async (t) => {
  const { path, token } = await makeBundle(t);
  const handle = await open(join(path, 'bands', '1'), 'r+');
  await handle.write(Buffer.from('x'), 0);
  await handle.close();
  const bundle = await SparseBundle.open(path, { deferBandListing: true });
  t.teardown(() => bundle.close());
  const report = await new BundleSession(bundle).changedBands(token);
  t.is(report.audit, 'full', '6 bands known to the stat cache: small enough for a full audit');
  t.deepEqual(
    report.bands.map((entry) => [entry.bandIndex, entry.foreign]),
    [[1, true]],
  );
});
