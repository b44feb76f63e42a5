import test from 'ava';
import { createHash } from 'node:crypto';
import { cp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { backupSnapshotName, bundleBackupSource } from '../../../lib/backup/bundle-backup-source.js';
import { describeBackups, verifyBackups } from '../../../lib/backup/backup-catalog.js';
import { readManifest } from '../../../lib/backup/backup-manifest.js';
import { listBackups } from '../../../lib/backup/backup-set.js';
import { createBackup } from '../../../lib/backup/create-backup.js';
import { thinBackups } from '../../../lib/backup/thin-backups.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import type { SbmWarning } from '../../../lib/warnings.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';

const MIB = 1024 * 1024;
const BAND = MIB;
const SIZE = 24 * MIB;

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

async function readAll(path: string): Promise<Buffer> {
  const bundle = await SparseBundle.open(path, { readOnly: true });
  try {
    return await bundle.read(0, bundle.sizeBytes);
  } finally {
    await bundle.close();
  }
}

/** Band names of a backup mapped to their inode numbers. */
async function bandInodes(backupPath: string): Promise<Map<string, number>> {
  const inodes = new Map<string, number>();
  for (const name of await readdir(join(backupPath, 'bands'))) inodes.set(name, (await stat(join(backupPath, 'bands', name))).ino);
  return inodes;
}

async function randomWrites(bundle: SparseBundle, oracle: Buffer, round: number): Promise<void> {
  let seed = round * 7919 + 1;
  const next = (limit: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % limit;
  };
  const count = 1 + next(5);
  for (let index = 0; index < count; index++) {
    const offset = next(SIZE - 70_000);
    if (next(6) === 0) {
      await bundle.trim(offset, 65536);
      oracle.fill(0, offset, offset + 65536);
    } else {
      const data = seededBytes(1 + next(65536), seed);
      await bundle.write(offset, data);
      data.copy(oracle, offset);
    }
  }
}

const everyRound = test.macro(async (t, freeze: 'held' | 'snapshot', rounds: number) => {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'backups');
  const bundle = await SparseBundle.create(path, { sizeBytes: SIZE, bandSizeBytes: BAND });
  t.teardown(() => bundle.close());
  const oracle = Buffer.alloc(SIZE);
  const expected = new Map<string, string>(); // backup path -> sha256 of the disk at its time
  const source = bundleBackupSource(bundle, { freeze });
  let previous: { path: string; bands: Map<string, string> } | undefined;
  for (let round = 0; round < rounds; round++) {
    await randomWrites(bundle, oracle, round);
    // Independent oracle of what changed: band file bytes now vs at the previous backup.
    const bandsNow = new Map<string, string>();
    for (const name of await readdir(join(path, 'bands'))) bandsNow.set(name, sha(await readFile(join(path, 'bands', name))));
    const result = await createBackup(source, dest);
    expected.set(result.path, sha(oracle));
    t.is(result.mode, round === 0 ? 'full' : 'tracked');
    const inodes = await bandInodes(result.path);
    if (previous !== undefined) {
      const previousInodes = await bandInodes(previous.path);
      const copied = [...inodes]
        .filter(([name, inode]) => previousInodes.get(name) !== inode)
        .map(([name]) => name)
        .sort();
      const changed = [...bandsNow]
        .filter(([name, digest]) => previous?.bands.get(name) !== digest)
        .map(([name]) => name)
        .sort();
      t.deepEqual(copied, changed, `round ${round}: new inodes are exactly the changed bands`);
      t.is(result.bandsCopied, copied.length);
      // Copies leave all-zero 64 KiB blocks as holes: only the other blocks count as written.
      let copiedBytes = 0;
      for (const name of copied) copiedBytes += nonZeroBlockBytes(await readFile(join(result.path, 'bands', name)));
      t.is(result.bytesWritten, copiedBytes);
    }
    previous = { path: result.path, bands: bandsNow };
  }
  for (const [backupPath, digest] of expected) t.is(sha(await readAll(backupPath)), digest, backupPath);
  const report = await verifyBackups(join(dest, 'vm'));
  t.deepEqual(report.damaged, []);
  t.is(report.backupsChecked, rounds);
  t.deepEqual(await readdir(join(path, '.sbm', 'snapshots')).catch(() => []), [], 'no snapshot is left behind');
  for (const name of await readdir(join(path, 'bands')))
    t.is((await stat(join(path, 'bands', name))).nlink, 1, `bands/${name} is linked by nothing else`);
});

test('20 rounds, bundle held: every backup restores exactly, copies only changed bands, links the rest', everyRound, 'held', 20);
test('8 rounds, through a snapshot: every backup restores exactly, copies only changed bands, links the rest', everyRound, 'snapshot', 8);

test('thinning random subsets never changes the bytes of the backups that remain', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'backups');
  const bundle = await SparseBundle.create(path, { sizeBytes: SIZE, bandSizeBytes: BAND });
  t.teardown(() => bundle.close());
  const oracle = Buffer.alloc(SIZE);
  const digests = new Map<string, string>();
  for (let round = 0; round < 8; round++) {
    await randomWrites(bundle, oracle, round + 100);
    const result = await createBackup(bundleBackupSource(bundle), dest);
    digests.set(result.name, sha(oracle));
  }
  const setDir = join(dest, 'vm');
  // Delete a pseudo-random half by size pressure, then by a policy that keeps only the newest.
  const summaries = await describeBackups(setDir);
  const total = summaries.reduce((sum, backup) => sum + backup.uniqueBytes, 0);
  const first = await thinBackups(setDir, { maxBytes: Math.floor(total / 2) });
  t.true(first.deleted.length > 0);
  for (const backup of await listBackups(setDir)) t.is(sha(await readAll(backup.path)), digests.get(backup.name) ?? 'unknown backup');
  t.deepEqual((await verifyBackups(setDir)).damaged, []);
  const second = await thinBackups(setDir, { keepHourly: 1 }, new Date(Date.now() + 2 * 3600_000));
  t.deepEqual(second.kept, [[...digests.keys()].at(-1) ?? ''], 'the newest backup always stays');
  for (const backup of await listBackups(setDir)) t.is(sha(await readAll(backup.path)), digests.get(backup.name) ?? 'unknown backup');
  t.deepEqual((await verifyBackups(setDir)).damaged, []);
});

const onePoint = test.macro(async (t, freeze: 'held' | 'snapshot') => {
  const dir = await tempDir(t);
  const path = join(dir, 'busy.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 8 * MIB, bandSizeBytes: BAND });
  t.teardown(() => bundle.close());
  const oracle = Buffer.alloc(8 * MIB);
  const states = [sha(oracle)]; // digest of the disk after each acknowledged write
  let stop = false;
  const writer = (async () => {
    for (let index = 0; !stop; index++) {
      const offset = (index * 1_234_567) % (8 * MIB - 20_000);
      const data = seededBytes(20_000, index + 1);
      await bundle.write(offset, data);
      data.copy(oracle, offset);
      states.push(sha(oracle));
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 30));
  const result = await createBackup(bundleBackupSource(bundle, { freeze }), join(dir, 'backups'));
  await new Promise((resolve) => setTimeout(resolve, 30));
  stop = true;
  await writer;
  const backupDigest = sha(await readAll(result.path));
  const point = states.indexOf(backupDigest);
  t.true(point > 0, 'the backup equals the disk after some exact number of writes');
  t.true(point < states.length - 1, 'and writes continued after the point without reaching the backup');
});

test('a backup taken while a writer keeps writing equals the disk at one exact point (held: the writer waits)', onePoint, 'held');
test('a backup taken while a writer keeps writing equals the disk at one exact point (snapshot)', onePoint, 'snapshot');

const refusedToken = test.macro(async (t, freeze: 'held' | 'snapshot') => {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'backups');
  let bundle = await SparseBundle.create(path, { sizeBytes: SIZE, bandSizeBytes: BAND });
  const oracle = Buffer.alloc(SIZE);
  await randomWrites(bundle, oracle, 1);
  await randomWrites(bundle, oracle, 2);
  await createBackup(bundleBackupSource(bundle), dest);
  await bundle.close();
  // A copy of the bundle gets a new tracking identity: the old token is refused there.
  const copy = join(dir, 'copy', 'vm.sparsebundle');
  await cp(path, copy, { recursive: true });
  await rm(path, { recursive: true });
  bundle = await SparseBundle.open(copy);
  t.teardown(() => bundle.close());
  await bundle.write(3 * MIB + 5, Buffer.from('one changed band'));
  oracle.write('one changed band', 3 * MIB + 5);
  const warnings: string[] = [];
  const result = await createBackup(bundleBackupSource(bundle, { freeze }), dest, { onWarning: (w) => warnings.push(w.code) });
  t.is(result.mode, 'hash-compare');
  t.true(warnings.includes('SBM_BACKUP_FULL_COMPARE'));
  t.is(result.bandsCopied, 1);
  t.is(sha(await readAll(result.path)), sha(oracle));
  t.truthy((await readManifest(result.path)).fallbackReason);
  t.is(result.bandsLinked, (await readdir(join(result.path, 'bands'))).length - 1);
  // The fallback run took a token of its own: the next run is tracked again.
  await bundle.write(5 * MIB, Buffer.from('another'));
  oracle.write('another', 5 * MIB);
  const next = await createBackup(bundleBackupSource(bundle, { freeze }), dest);
  t.like(next, { mode: 'tracked', bandsCopied: 1 });
  t.is(sha(await readAll(next.path)), sha(oracle));
});

test('a refused token falls back to comparing hashes and stays incremental in bytes (held)', refusedToken, 'held');
test('a refused token falls back to comparing hashes and stays incremental in bytes (snapshot)', refusedToken, 'snapshot');

test('copy mode shares no band file with earlier backups', async (t) => {
  const dir = await tempDir(t);
  const bundle = await SparseBundle.create(join(dir, 'vm.sparsebundle'), { sizeBytes: SIZE, bandSizeBytes: BAND });
  t.teardown(() => bundle.close());
  await randomWrites(bundle, Buffer.alloc(SIZE), 5);
  const first = await createBackup(bundleBackupSource(bundle), join(dir, 'b'));
  const second = await createBackup(bundleBackupSource(bundle), join(dir, 'b'), { copyMode: true });
  t.is(second.bandsLinked, (await readdir(join(first.path, 'bands'))).length);
  for (const name of await readdir(join(second.path, 'bands'))) t.is((await stat(join(second.path, 'bands', name))).nlink, 1);
});

test(
  "held: a killed run's backup snapshot is removed, " + 'other snapshots (even named sbm-backup-*) stay, a read-only bundle is refused',
  async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'vm.sparsebundle');
    const bundle = await SparseBundle.create(path, { sizeBytes: SIZE, bandSizeBytes: BAND });
    const oracle = Buffer.alloc(SIZE);
    await randomWrites(bundle, oracle, 3);
    await new BundleSession(bundle).snapshots.create(backupSnapshotName(1_700_000_000_000, 'abcdef012345'));
    await new BundleSession(bundle).snapshots.create('sbm-backup-1-abcdef');
    await new BundleSession(bundle).snapshots.create('keep');
    const warnings: SbmWarning[] = [];
    const result = await createBackup(bundleBackupSource(bundle), join(dir, 'backups'), { onWarning: (w) => warnings.push(w) });
    t.is(sha(await readAll(result.path)), sha(oracle));
    t.deepEqual((await readdir(join(path, '.sbm', 'snapshots'))).sort(), ['keep.sparsebundle', 'sbm-backup-1-abcdef.sparsebundle']);
    t.deepEqual(
      warnings.map((w) => [w.code, w.data?.snapshot]),
      [['SBM_BACKUP_LEFT_ALONE', 'sbm-backup-1-abcdef']],
    );
    await bundle.close();
    const readOnly = await SparseBundle.open(path, { readOnly: true });
    t.teardown(() => readOnly.close());
    const error = await t.throwsAsync(createBackup(bundleBackupSource(readOnly), join(dir, 'backups')));
    t.is((error as { code?: string }).code, 'SBM_READ_ONLY');
  },
);

test('held: a failed backup removes its in-progress folder and lets held-back writes through', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const dest = join(dir, 'backups');
  const bundle = await SparseBundle.create(path, { sizeBytes: SIZE, bandSizeBytes: BAND });
  t.teardown(() => bundle.close());
  for (let band = 0; band < 4; band++) await bundle.write(band * BAND, seededBytes(BAND, band + 1));
  const first = await createBackup(bundleBackupSource(bundle), dest);
  await rm(join(first.path, 'bands', '2')); // the next run cannot link band 2 to it
  await bundle.write(0, Buffer.from('changed'));
  const source = bundleBackupSource(bundle);
  let writeDuringBackup: Promise<void> | undefined;
  const freeze = source.freeze.bind(source);
  const failing = createBackup(
    {
      ...source,
      freeze: async (token) => {
        const point = await freeze(token);
        writeDuringBackup = bundle.write(BAND, Buffer.from('held back'));
        return point;
      },
    },
    dest,
  );
  await t.throwsAsync(failing, { code: 'SBM_NOT_FOUND' });
  await writeDuringBackup;
  t.deepEqual(
    (await readdir(join(dest, 'vm'))).filter((name) => name.endsWith('.inProgress')),
    [],
  );
  t.is((await listBackups(join(dest, 'vm'))).length, 1);
  t.is((await bundle.read(BAND, 9)).toString(), 'held back');
});

test('a source whose frozen point carries no tracker answer is asked afterwards', async (t) => {
  const dir = await tempDir(t);
  const bundle = await SparseBundle.create(join(dir, 'vm.sparsebundle'), { sizeBytes: SIZE, bandSizeBytes: BAND });
  t.teardown(() => bundle.close());
  const oracle = Buffer.alloc(SIZE);
  await randomWrites(bundle, oracle, 9);
  const inner = bundleBackupSource(bundle, { freeze: 'snapshot' });
  let asked = 0;
  const source = {
    ...inner,
    freeze: async () => ({ ...(await inner.freeze()), changed: undefined }),
    answerChangedBands: (token: string) => {
      asked++;
      return inner.answerChangedBands(token);
    },
  };
  await createBackup(source, join(dir, 'b'));
  await bundle.write(7 * MIB, Buffer.from('x'));
  oracle.write('x', 7 * MIB);
  const second = await createBackup(source, join(dir, 'b'));
  t.is(asked, 1);
  t.like(second, { mode: 'tracked', bandsCopied: 1 });
  t.is(sha(await readAll(second.path)), sha(oracle));
});

function nonZeroBlockBytes(data: Buffer): number {
  let bytes = 0;
  for (let at = 0; at < data.length; at += 64 * 1024) {
    const block = data.subarray(at, at + 64 * 1024);
    if (block.some((byte) => byte !== 0)) bytes += block.length;
  }
  return bytes;
}
