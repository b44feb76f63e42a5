import test from 'ava';
import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import { checkBundle } from '../../../lib/bundle/check-bundle.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../../lib/errors.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';
import { hashBundle } from '../tracking/band-oracle.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';
import type { SnapshotManager } from '../../../lib/snapshots/snapshot-manager.js';

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;

async function newBundle(t: Parameters<typeof tempDir>[0]): Promise<SparseBundle> {
  const dir = await tempDir(t);
  const bundle = await SparseBundle.create(join(dir, 'live.sparsebundle'), { sizeBytes: SIZE, bandSizeBytes: MiB });
  t.teardown(() => bundle.close());
  return bundle;
}

test('a snapshot is a complete bundle of hard links, opens read-only, passes sbm check, and never changes', async (t) => {
  const bundle = await newBundle(t);
  await bundle.write(0, seededBytes(3 * MiB, 1));
  const before = await bundle.read(0, SIZE);
  const info = await new BundleSession(bundle).snapshots.create('first');
  t.is(info.bandCount, 3);
  t.regex(info.token, /^sbm1:/);
  t.is((await stat(join(info.path, 'bands', '1'))).ino, (await stat(bundle.bandPath(1))).ino, 'no band copied');
  t.deepEqual((await checkBundle(info.path)).problems, []);
  const hash = await hashBundle(info.path);
  await bundle.write(MiB + 5, seededBytes(100, 2)); // copy-on-write of band 1
  await bundle.trim(0, MiB); // deletes band 0 from the live disk only
  t.not((await stat(join(info.path, 'bands', '1'))).ino, (await stat(bundle.bandPath(1))).ino);
  t.is(await hashBundle(info.path), hash);
  const device = await new BundleSession(bundle).snapshots.open('first');
  t.teardown(() => device.close());
  t.true(device.readOnly);
  t.true((await device.read(0, SIZE)).equals(before));
  const error = await t.throwsAsync(device.write(0, Buffer.alloc(1, 1)));
  t.true(isSbmError(error, 'SBM_READ_ONLY'));
  // changed-bands since the snapshot = what changed after it
  const report = await new BundleSession(bundle).changedBands((await new BundleSession(bundle).snapshots.meta('first')).token);
  t.deepEqual(
    report.bands.map((band) => [band.bandIndex, band.deleted]),
    [
      [0, true],
      [1, false],
    ],
  );
});

test('snapshot under interleaved writes is one point in time: each write is wholly in or wholly out', async (t) => {
  const bundle = await newBundle(t);
  await bundle.write(0, Buffer.alloc(SIZE, 0x11));
  const writes = Array.from({ length: 64 }, (_, index) => ({
    offset: index * (SIZE / 64) + 7,
    data: seededBytes(SIZE / 64 - 14, 100 + index),
  }));
  // Writes keep coming (two at a time) while the snapshot drains I/O and links the bands.
  let snapshot: ReturnType<SnapshotManager['create']> | undefined;
  for (let index = 0; index < writes.length; index += 2) {
    if (index === 16) snapshot = new BundleSession(bundle).snapshots.create('mid');
    await Promise.all(writes.slice(index, index + 2).map((write) => bundle.write(write.offset, write.data)));
  }
  const info = await (snapshot as ReturnType<SnapshotManager['create']>);
  const hash = await hashBundle(info.path);
  const device = await new BundleSession(bundle).snapshots.open('mid');
  t.teardown(() => device.close());
  let inside = 0;
  for (const write of writes) {
    const seen = await device.read(write.offset, write.data.length);
    const isNew = seen.equals(write.data);
    t.true(isNew || seen.equals(Buffer.alloc(write.data.length, 0x11)), `write at ${write.offset} is torn in the snapshot`);
    if (isNew) inside++;
  }
  t.log(`${inside} of ${writes.length} writes landed before the snapshot`);
  for (const write of writes) await bundle.write(write.offset, Buffer.alloc(write.data.length, 0x22));
  t.is(await hashBundle(info.path), hash, 'later writes never reach the snapshot');
});

test('list shows unique size; delete frees only its own bands and keeps other snapshots intact', async (t) => {
  const bundle = await newBundle(t);
  await bundle.write(0, seededBytes(4 * MiB, 3));
  await new BundleSession(bundle).snapshots.create('a');
  await bundle.write(0, seededBytes(MiB, 4)); // band 0 now differs from a's
  await new BundleSession(bundle).snapshots.create('b');
  await bundle.write(MiB, seededBytes(MiB, 5)); // band 1 now differs from b's (and a's)
  const list = await new BundleSession(bundle).snapshots.list();
  t.deepEqual(
    list.map((item) => item.name),
    ['a', 'b'],
  );
  const [a, b] = list as [(typeof list)[number], (typeof list)[number]];
  t.true(a.uniqueBytes >= MiB, 'a alone holds the old band 0');
  t.is(a.bandCount, 4);
  t.true(b.uniqueBytes >= 0);
  const hashB = await hashBundle(b.path);
  const live = await bundle.read(0, SIZE);
  await new BundleSession(bundle).snapshots.delete('a');
  t.deepEqual(
    (await new BundleSession(bundle).snapshots.list()).map((item) => item.name),
    ['b'],
  );
  t.is(await hashBundle(b.path), hashB);
  t.true((await bundle.read(0, SIZE)).equals(live));
  const missing = await t.throwsAsync(new BundleSession(bundle).snapshots.delete('a'));
  t.true(isSbmError(missing, 'SBM_NOT_FOUND'));
  const duplicate = await t.throwsAsync(new BundleSession(bundle).snapshots.create('b'));
  t.true(isSbmError(duplicate, 'SBM_EXISTS'));
  const badName = await t.throwsAsync(new BundleSession(bundle).snapshots.create('../x'));
  t.true(isSbmError(badName, 'SBM_INVALID_ARGUMENT'));
});

test('revert makes the live disk equal to the snapshot, is tracked, and keeps every snapshot intact', async (t) => {
  const bundle = await newBundle(t);
  await bundle.write(0, seededBytes(3 * MiB, 6));
  await new BundleSession(bundle).snapshots.create('base');
  const baseContent = await bundle.read(0, SIZE);
  await bundle.write(2 * MiB, seededBytes(MiB, 7));
  await bundle.write(5 * MiB, seededBytes(100, 8));
  await bundle.trim(0, MiB);
  await new BundleSession(bundle).snapshots.create('later');
  const hashBase = await hashBundle(new BundleSession(bundle).snapshots.pathOf('base'));
  const hashLater = await hashBundle(new BundleSession(bundle).snapshots.pathOf('later'));
  await bundle.write(7 * MiB, seededBytes(10, 9));
  const token = await new BundleSession(bundle).token();
  const result = await new BundleSession(bundle).snapshots.revert('base');
  t.is(result.bandsChanged, 4); // 0 restored, 2 restored, 5 and 7 deleted
  t.true((await bundle.read(0, SIZE)).equals(baseContent));
  t.is(
    (await new BundleSession(bundle).snapshots.revert('base')).bandsChanged,
    0,
    'revert is idempotent (an interrupted one is finished by re-running it)',
  );
  const report = await new BundleSession(bundle).changedBands(token);
  t.deepEqual(
    report.bands.map((band) => [band.bandIndex, band.deleted]),
    [
      [0, false],
      [2, false],
      [5, true],
      [7, true],
    ],
  );
  await bundle.write(0, seededBytes(MiB, 10)); // shares base's inode now: must copy first
  t.is(await hashBundle(new BundleSession(bundle).snapshots.pathOf('base')), hashBase);
  t.is(await hashBundle(new BundleSession(bundle).snapshots.pathOf('later')), hashLater);
  t.deepEqual((await new BundleSession(bundle).snapshots.revert('later')).bandsChanged > 0, true);
  t.is(await hashBundle(new BundleSession(bundle).snapshots.pathOf('base')), hashBase);
  t.deepEqual((await checkBundle(bundle.path)).problems, []);
});

test('a snapshot being read (as sbm mount --snapshot does) cannot be deleted until its reader closes', async (t) => {
  const bundle = await newBundle(t);
  await bundle.write(0, seededBytes(2 * MiB, 7));
  const info = await new BundleSession(bundle).snapshots.create('served');
  const hash = await hashBundle(info.path);
  const reader = await new BundleSession(bundle).snapshots.open('served'); // holds the snapshot's shared lock
  const refused = await t.throwsAsync(new BundleSession(bundle).snapshots.delete('served'));
  t.true(isSbmError(refused, 'SBM_LOCKED'), String(refused));
  t.regex(refused?.message ?? '', /snapshot "served" .* is in use/);
  t.is(await hashBundle(info.path), hash, 'the refused delete changed nothing');
  t.true((await reader.read(0, 2 * MiB)).equals(seededBytes(2 * MiB, 7)));
  await reader.close();
  await new BundleSession(bundle).snapshots.delete('served');
  t.deepEqual(await new BundleSession(bundle).snapshots.list(), []);
  await t.throwsAsync(stat(info.path), { code: 'ENOENT' });
});
