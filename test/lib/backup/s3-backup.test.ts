// S3 backups against a real Ceph RADOS Gateway (test/helpers/s3-gateway.ts): byte counts of full
// and incremental runs, restores equal to the disk at each backup, the hash-compare fallback,
// verify finding damage made behind sbm's back, and the lease between thin and backups.

import test from 'ava';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleBackupSource } from '../../../lib/backup/bundle-backup-source.js';
import { S3BackupDevice } from '../../../lib/backup/s3/s3-backup-device.js';
import { createS3Backup } from '../../../lib/backup/s3/s3-backup.js';
import { verifyS3Backups } from '../../../lib/backup/s3/s3-catalog.js';
import { acquireLease } from '../../../lib/backup/s3/s3-lease.js';
import { s3ObjectStore } from '../../../lib/backup/s3/s3-object-store.js';
import { S3Repository } from '../../../lib/backup/s3/s3-repository.js';
import { thinS3Backups } from '../../../lib/backup/s3/s3-thin.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../../lib/errors.js';
import { newBucket, s3Gateway } from '../../helpers/s3-gateway.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';

const MIB = 1024 * 1024;
const SIZE = 24 * MIB;
const BAND = 4 * MIB;
/** A chunk object is one format byte and the chunk (raw when it does not compress). */
const RAW_CHUNK_OBJECT = MIB + 1;
/** Generous bound for a compressed, mostly-zero chunk. */
const SMALL_OBJECT = 64 * 1024;

async function setUp(t: Parameters<typeof s3Gateway>[0], name = 'vm') {
  const gateway = await s3Gateway(t);
  const bucket = await newBucket(t, gateway);
  Object.assign(process.env, gateway.env);
  const store = s3ObjectStore({ bucket, endpoint: gateway.endpoint });
  const dir = await tempDir(t);
  const bundle = await SparseBundle.create(join(dir, `${name}.sparsebundle`), { sizeBytes: SIZE, bandSizeBytes: BAND });
  t.teardown(() => bundle.close());
  const oracle = Buffer.alloc(SIZE);
  const write = async (offset: number, data: Buffer) => {
    await bundle.write(offset, data);
    data.copy(oracle, offset);
  };
  return { gateway, bucket, store, dir, bundle, oracle, write };
}

async function repositoryOf(store: ReturnType<typeof s3ObjectStore>): Promise<S3Repository> {
  return (await S3Repository.open(store, 'repo')) as S3Repository;
}

async function restoredBytes(repository: S3Repository, set: string, name: string): Promise<Buffer> {
  const device = new S3BackupDevice(repository, await repository.readManifest(set, name), { cacheBytes: 4 * MIB });
  try {
    return await device.read(0, device.sizeBytes);
  } finally {
    await device.close();
  }
}

test('full then incremental backups upload only new chunks, and each restores the disk as it was', async (t) => {
  const { store, bundle, oracle, write } = await setUp(t);
  const source = bundleBackupSource(bundle);
  await write(0, seededBytes(10 * MIB, 1));
  await write(12 * MIB, seededBytes(MIB, 2));
  await write(16 * MIB, seededBytes(MIB, 2)); // the same chunk again: stored once
  await write(20 * MIB + 4096, seededBytes(4096, 3)); // a chunk that is mostly zeros
  const first = await createS3Backup(source, store, 'repo');
  const atFirst = Buffer.from(oracle);
  t.like(first, { mode: 'full', chunksUploaded: 12, chunksReused: 1, bandsUnchanged: 0 });
  t.true(
    first.bytesUploaded >= 11 * RAW_CHUNK_OBJECT && first.bytesUploaded <= 11 * RAW_CHUNK_OBJECT + SMALL_OBJECT,
    `${first.bytesUploaded}`,
  );

  // Scattered small writes: two into stored random chunks, one into a band that held nothing.
  await write(MIB + 100, seededBytes(4096, 4));
  await write(7 * MIB + 5000, seededBytes(4096, 5));
  await write(22 * MIB, seededBytes(4096, 6));
  const second = await createS3Backup(source, store, 'repo');
  const atSecond = Buffer.from(oracle);
  t.like(second, { mode: 'tracked', chunksUploaded: 3, bandsRead: 3, bandsUnchanged: 3 });
  t.true(
    second.bytesUploaded >= 2 * RAW_CHUNK_OBJECT && second.bytesUploaded <= 2 * RAW_CHUNK_OBJECT + SMALL_OBJECT,
    `${second.bytesUploaded}`,
  );

  const third = await createS3Backup(source, store, 'repo');
  t.like(third, { mode: 'tracked', chunksUploaded: 0, bytesUploaded: 0, bandsRead: 0, bytesRead: 0 });

  const repository = await repositoryOf(store);
  const listed = await repository.listBackups('vm');
  t.deepEqual(
    listed.map((entry) => entry.name),
    [first.name, second.name, third.name],
  );
  t.true((await restoredBytes(repository, 'vm', first.name)).equals(atFirst), 'the first backup restores the disk at its time');
  t.true((await restoredBytes(repository, 'vm', second.name)).equals(atSecond), 'the second backup restores the disk at its time');
  t.true((await restoredBytes(repository, 'vm', third.name)).equals(oracle));
  const report = await verifyS3Backups({ repository });
  t.like(report, { backupsChecked: 3, chunksTotal: 15, chunksChecked: 15, damaged: [] });
});

test('a copy of the disk (tracker refuses the token) is compared by hash and uploads nothing already stored', async (t) => {
  const { store, bundle, dir, write } = await setUp(t);
  await write(0, seededBytes(6 * MIB, 7));
  const first = await createS3Backup(bundleBackupSource(bundle), store, 'repo');
  t.is(first.chunksUploaded, 6);
  await bundle.close();
  // A copied bundle starts a new tracking epoch: the previous token is refused.
  await cp(bundle.path, join(dir, 'copy', 'vm.sparsebundle'), { recursive: true });
  const copy = await SparseBundle.open(join(dir, 'copy', 'vm.sparsebundle'));
  t.teardown(() => copy.close());
  await copy.write(3 * MIB, seededBytes(4096, 8));
  const warnings: string[] = [];
  const second = await createS3Backup(bundleBackupSource(copy), store, 'repo', { onWarning: (warning) => warnings.push(warning.code) });
  t.like(second, { mode: 'hash-compare', chunksUploaded: 1, chunksReused: 5 });
  t.true(warnings.includes('SBM_BACKUP_FULL_COMPARE'));
  const repository = await repositoryOf(store);
  t.true((await restoredBytes(repository, 'vm', second.name)).equals(await copy.read(0, SIZE)));
});

test('verify names an object damaged or deleted behind sbm’s back and every backup using it', async (t) => {
  const { gateway, bucket, store, bundle, write } = await setUp(t);
  const source = bundleBackupSource(bundle);
  await write(0, seededBytes(3 * MIB, 9));
  const first = await createS3Backup(source, store, 'repo');
  await write(8 * MIB, seededBytes(MIB, 10));
  const second = await createS3Backup(source, store, 'repo');
  const repository = await repositoryOf(store);
  const manifest = await repository.readManifest('vm', first.name);
  const [shared, gone] = manifest.bands['0']?.chunks ?? [];
  if (typeof shared !== 'string' || typeof gone !== 'string') throw new Error('band 0 should hold two data chunks');
  // Same length, one byte different: only re-hashing can notice.
  const stored = (await store.get(repository.chunkKey(shared)))?.body ?? Buffer.alloc(0);
  stored[stored.length - 1] = (stored[stored.length - 1] ?? 0) ^ 0xff;
  await gateway.client.send(new PutObjectCommand({ Bucket: bucket, Key: repository.chunkKey(shared), Body: stored }));
  await gateway.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: repository.chunkKey(gone) }));

  const report = await verifyS3Backups({ repository });
  t.is(report.damaged.length, 2);
  const byChunk = new Map(report.damaged.map((damage) => [damage.chunk, damage]));
  t.regex(byChunk.get(shared)?.problem ?? '', /does not match its hash/);
  t.regex(byChunk.get(gone)?.problem ?? '', /missing/);
  t.deepEqual(byChunk.get(shared)?.backups.sort(), [`vm/${first.name}`, `vm/${second.name}`].sort());
  t.true(byChunk.get(shared)?.bands.includes(`vm/${first.name} band 0`));
  // A sample still checks only chunks, never more than asked.
  t.is((await verifyS3Backups({ repository }, { samplePercent: 25 })).chunksChecked, 1);
  // A restore of a damaged backup fails instead of writing wrong bytes.
  const error = await t.throwsAsync(restoredBytes(repository, 'vm', second.name));
  t.true(isSbmError(error, 'SBM_CORRUPT'), String(error));
});

test('thin waits for a running backup; a backup waits for a thin; neither breaks the other', async (t) => {
  const { store, bundle, write } = await setUp(t);
  const source = bundleBackupSource(bundle);
  await write(0, seededBytes(2 * MIB, 11));
  const first = await createS3Backup(source, store, 'repo');
  await write(0, seededBytes(2 * MIB, 12));
  await createS3Backup(source, store, 'repo');
  const repository = await repositoryOf(store);

  // A backup holds its share: thin must not collect the chunks it relies on until it is done.
  const backupShare = await acquireLease(repository, 'backup');
  let thinDone = false;
  const thinning = thinS3Backups(repository, { keepLast: 1 }).then((result) => {
    thinDone = true;
    return result;
  });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.false(thinDone, 'thin waits while a backup holds the lease');
  await write(4 * MIB, seededBytes(MIB, 13));
  const during = await createS3Backup(source, store, 'repo'); // shares the lease with the holder above
  await backupShare.release();
  const thinned = await thinning;
  t.true(thinned.sets[0]?.deleted.includes(first.name));
  t.false(thinned.sets[0]?.kept.includes(first.name));
  t.deepEqual(thinned.sets[0]?.kept, [during.name]);
  t.is(thinned.chunksDeleted, 2, "the first backup's two chunks are collected");

  // Now thin holds the lease exclusively: a backup started meanwhile waits, then completes.
  await write(8 * MIB, seededBytes(MIB, 14));
  const thinLease = await acquireLease(repository, 'thin');
  let backupDone = false;
  const backingUp = createS3Backup(source, store, 'repo').then((result) => {
    backupDone = true;
    return result;
  });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.false(backupDone, 'a backup waits while thin holds the lease');
  await thinLease.release();
  const last = await backingUp;
  t.true((await restoredBytes(repository, 'vm', last.name)).equals(await bundle.read(0, SIZE)));
  t.like(await verifyS3Backups({ repository }), { damaged: [] });
});

test('a lease left by a killed run expires, and a thin then proceeds', async (t) => {
  const { store, bundle, write } = await setUp(t);
  await write(0, seededBytes(MIB, 15));
  await createS3Backup(bundleBackupSource(bundle), store, 'repo');
  const repository = await repositoryOf(store);
  // What a SIGKILLed backup leaves: its entry, no longer renewed, expiring in 2 s.
  const holder = { id: 'killed', kind: 'backup', host: 'elsewhere', pid: 1, since: new Date().toISOString() };
  const lease = { kind: 'sbm-s3-lease', holders: [{ ...holder, expiresAt: new Date(Date.now() + 2000).toISOString() }] };
  await store.put(repository.leaseKey, Buffer.from(JSON.stringify(lease)));
  const waitedFor: string[] = [];
  const result = await thinS3Backups(repository, { keepLast: 1 }, { lease: { onWait: (who) => waitedFor.push(who) } });
  t.is(waitedFor.length, 1);
  t.regex(waitedFor[0] ?? '', /backup run killed/);
  t.is(result.sets[0]?.kept.length, 1);
  // And a live entry that never expires within the wait is reported, not broken.
  const live = { kind: 'sbm-s3-lease', holders: [{ ...holder, expiresAt: new Date(Date.now() + 60_000).toISOString() }] };
  await store.put(repository.leaseKey, Buffer.from(JSON.stringify(live)));
  const error = await t.throwsAsync(thinS3Backups(repository, { keepLast: 1 }, { lease: { waitSeconds: 1 } }));
  t.true(isSbmError(error, 'SBM_LOCKED'), String(error));
});

test('one listing of the chunks replaces a HEAD per new chunk, and still skips chunks a killed run stored', async (t) => {
  const { store, bundle, write } = await setUp(t);
  const counted = { heads: 0, puts: 0, failPutsAfter: Number.POSITIVE_INFINITY };
  const counting: typeof store = {
    ...store,
    describe: (key) => store.describe(key),
    get: (key) => store.get(key),
    getRange: (key, offset, length) => store.getRange(key, offset, length),
    head: (key) => {
      counted.heads++;
      return store.head(key);
    },
    put: async (key, body) => {
      if (key.includes('/chunks/') && ++counted.puts > counted.failPutsAfter) throw new Error('killed mid-run');
      await store.put(key, body);
    },
    putIf: (key, body, condition) => store.putIf(key, body, condition),
    deleteMany: (keys) => store.deleteMany(keys),
    list: (prefix) => store.list(prefix),
  };
  const source = bundleBackupSource(bundle);
  await write(0, seededBytes(8 * MIB, 21));
  const first = await createS3Backup(source, counting, 'repo', { chunkLookup: 'list' });
  t.like(first, { mode: 'full', chunksUploaded: 8 });
  t.is(counted.heads, 0, 'no chunk was looked up by HEAD');

  // A run killed after storing 3 of 6 new chunks, then a listing run: those 3 are found, not sent again.
  await write(8 * MIB, seededBytes(6 * MIB, 22));
  counted.failPutsAfter = counted.puts + 3;
  await t.throwsAsync(createS3Backup(source, counting, 'repo', { chunkLookup: 'head' }));
  counted.failPutsAfter = Number.POSITIVE_INFINITY;
  const headsBefore = counted.heads;
  const resumed = await createS3Backup(source, counting, 'repo', { chunkLookup: 'list' });
  t.like(resumed, { mode: 'tracked', chunksUploaded: 3, chunksReused: 3 });
  t.is(counted.heads - headsBefore, 3, 'a HEAD only for the chunks the listing holds (to confirm them)');
  const repository = await repositoryOf(store);
  t.true((await restoredBytes(repository, 'vm', resumed.name)).equals(await bundle.read(0, SIZE)));
  t.like(await verifyS3Backups({ repository }), { damaged: [] });
});
