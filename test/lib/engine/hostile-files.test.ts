// Bundles someone tampered with: band files, bands/, lock and token replaced by symlinks or FIFOs,
// an Info.plist of 2 GB. sbm must never read, write, create or truncate anything outside the
// bundle through them, and never hang: each case ends quickly with a code or a warning.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { access, mkdir, readFile, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyBandHashing, hashFile } from '../../../lib/backup/band-files.js';
import { checkBundle } from '../../../lib/bundle/check-bundle.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { WarningList } from '../../../lib/warnings.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';

const MIB = 1024 * 1024;
/** Every hostile case must finish well within this (a FIFO open used to block forever). */
const QUICK_MS = 10_000;

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** A closed 4 MiB bundle of 1 MiB bands with data in bands 0 and 1, and an outside file. */
async function setup(t: ExecutionContext) {
  t.timeout(QUICK_MS * 3);
  const dir = await tempDir(t);
  const path = join(dir, 'disk.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 4 * MIB, bandSizeBytes: MIB });
  await bundle.write(0, seededBytes(MIB, 1));
  await bundle.write(MIB, seededBytes(MIB, 2));
  await bundle.close();
  const outside = join(dir, 'outside-secret');
  const secret = Buffer.from('root:$6$secret-hash:19000:0:99999:7:::\n'.repeat(1000));
  await writeFile(outside, secret);
  return { dir, path, outside, secretHash: sha256(secret), band: (n: number) => join(path, 'bands', n.toString(16)) };
}

async function mkfifo(path: string): Promise<void> {
  await rm(path, { force: true });
  await execa('mkfifo', [path]);
}

async function within<T>(t: ExecutionContext, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not finish within ${QUICK_MS} ms (hung)`)), QUICK_MS);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
    t.pass();
  }
}

test('a band that is a symlink is never read, written, zeroed or cut through', async (t) => {
  const { path, outside, secretHash, band } = await setup(t);
  await rm(band(1));
  await symlink(outside, band(1));
  const bundle = await SparseBundle.open(path);
  try {
    const read = await t.throwsAsync(bundle.read(MIB, 4096), { message: /^SBM_BAD_BAND: band 1 .* is a symlink, not a regular file/ });
    t.is((read as { code?: string } | undefined)?.code, 'SBM_BAD_BAND');
    await t.throwsAsync(bundle.write(MIB + 10, Buffer.from('overwrite')), { message: /^SBM_BAD_BAND/ });
    await t.throwsAsync(bundle.writeZeroes(MIB + 100, 100), { message: /^SBM_BAD_BAND/ });
    await t.throwsAsync(bundle.trim(MIB, MIB), { message: /^SBM_BAD_BAND/ });
    await t.throwsAsync(new BundleSession(bundle).resize(MIB + MIB / 2), { message: /^SBM_BAD_BAND/ });
    await t.throwsAsync(bundle.extents(MIB, MIB), { message: /^SBM_BAD_BAND/ });
    // Band 0 is a regular file and still works.
    t.is(sha256(await bundle.read(0, MIB)), sha256(seededBytes(MIB, 1)));
  } finally {
    await bundle.close();
  }
  t.is(sha256(await readFile(outside)), secretHash, 'the outside file is unchanged');
  const readOnly = await SparseBundle.open(path, { readOnly: true });
  await t.throwsAsync(readOnly.read(MIB, 512), { message: /^SBM_BAD_BAND/ });
  await readOnly.close();
});

test('a dangling band symlink is never created through', async (t) => {
  const { dir, path, band } = await setup(t);
  const target = join(dir, 'created-by-band');
  await symlink(target, band(2));
  const bundle = await SparseBundle.open(path);
  try {
    await t.throwsAsync(bundle.write(2 * MIB, Buffer.from('data')), { message: /^SBM_BAD_BAND: band 2 .* is a symlink/ });
  } finally {
    await bundle.close();
  }
  await t.throwsAsync(access(target), { code: 'ENOENT' });
});

test('a bands/ folder that is a symlink is refused at open; nothing is written outside', async (t) => {
  const { dir, path } = await setup(t);
  const elsewhere = join(dir, 'elsewhere');
  await rename(join(path, 'bands'), elsewhere);
  await symlink(elsewhere, join(path, 'bands'));
  const before = (await readdir(elsewhere)).sort();
  await t.throwsAsync(SparseBundle.open(path), { message: /^SBM_BAD_BAND: .*bands is a symlink, not a folder/ });
  await t.throwsAsync(SparseBundle.open(path, { readOnly: true }), { message: /^SBM_BAD_BAND/ });
  t.deepEqual((await readdir(elsewhere)).sort(), before);
});

test('.sbm/tmp that is a symlink is refused before staging is cleared through it', async (t) => {
  const { dir, path } = await setup(t);
  const victim = join(dir, 'victim');
  await mkdir(victim);
  await writeFile(join(victim, 'keep-me'), 'precious');
  await rm(join(path, '.sbm', 'tmp'), { recursive: true });
  await symlink(victim, join(path, '.sbm', 'tmp'));
  await t.throwsAsync(SparseBundle.open(path), { message: /^SBM_CORRUPT: .*tmp is a symlink, not a folder/ });
  t.is(await readFile(join(victim, 'keep-me'), 'utf8'), 'precious');
});

test('a lock that is a symlink is refused and its target is not created', async (t) => {
  const { dir, path } = await setup(t);
  const target = join(dir, 'created-by-lock');
  await rm(join(path, 'lock'));
  await symlink(target, join(path, 'lock'));
  await t.throwsAsync(SparseBundle.open(path), { message: /^SBM_CORRUPT: .*lock is a symlink, not a regular file/ });
  await t.throwsAsync(SparseBundle.open(path, { readOnly: true }), { message: /^SBM_CORRUPT/ });
  await t.throwsAsync(access(target), { code: 'ENOENT' });
});

test('an owner file that is a symlink is replaced, never written through', async (t) => {
  const { dir, path } = await setup(t);
  const target = join(dir, 'owner-target');
  await writeFile(target, 'untouched');
  await symlink(target, join(path, '.sbm', 'owner'));
  const bundle = await SparseBundle.open(path);
  await bundle.close();
  t.is(await readFile(target, 'utf8'), 'untouched');
});

test('a FIFO band fails reads at once with SBM_BAD_BAND (no hang)', async (t) => {
  const { path, band } = await setup(t);
  await mkfifo(band(1));
  const bundle = await within(t, SparseBundle.open(path, { readOnly: true }));
  try {
    await within(t, t.throwsAsync(bundle.read(MIB, 4096), { message: /^SBM_BAD_BAND: band 1 .* is a FIFO/ }));
  } finally {
    await bundle.close();
  }
  const writable = await within(t, SparseBundle.open(path));
  try {
    await within(t, t.throwsAsync(writable.write(MIB, Buffer.from('x')), { message: /^SBM_BAD_BAND: band 1 .* is a FIFO/ }));
  } finally {
    await writable.close();
  }
});

test('a FIFO token, a FIFO lock and a token linked to /dev/zero are refused at once', async (t) => {
  const { path } = await setup(t);
  await mkfifo(join(path, 'token'));
  await within(
    t,
    t.throwsAsync(SparseBundle.open(path, { readOnly: true }), { message: /^SBM_CORRUPT: .*token is a FIFO, not a regular file/ }),
  );
  await rm(join(path, 'token'));
  await symlink('/dev/zero', join(path, 'token'));
  await within(t, t.throwsAsync(SparseBundle.open(path, { readOnly: true }), { message: /^SBM_CORRUPT: .*token is a symlink/ }));
  await rm(join(path, 'token'));
  await writeFile(join(path, 'token'), '');
  await mkfifo(join(path, 'lock'));
  await within(t, t.throwsAsync(SparseBundle.open(path), { message: /^SBM_CORRUPT: .*lock is a FIFO, not a regular file/ }));
  await within(t, t.throwsAsync(SparseBundle.open(path, { readOnly: true }), { message: /^SBM_CORRUPT: .*lock is a FIFO/ }));
});

test('a huge token is judged by its size and first bytes, never read whole', async (t) => {
  const { path } = await setup(t);
  await execa('truncate', ['-s', '4G', join(path, 'token')]);
  // Reading 4 GB whole would fail (past Node's readFile limit) instead of giving SBM_ENCRYPTED.
  await within(t, t.throwsAsync(SparseBundle.open(path, { readOnly: true }), { message: /^SBM_ENCRYPTED/ }));
});

test('a 2 GB sparse Info.plist is not read: Info.bckup is used with a warning, quickly', async (t) => {
  const { path } = await setup(t);
  await execa('truncate', ['-s', '2G', join(path, 'Info.plist')]);
  const warnings = new WarningList();
  const bundle = await within(t, SparseBundle.open(path, { readOnly: true, onWarning: warnings.sink }));
  t.is(bundle.sizeBytes, 4 * MIB);
  await bundle.close();
  t.deepEqual(
    warnings.items.map((warning) => warning.code),
    ['SBM_PLIST_FALLBACK'],
  );
  t.regex(warnings.items[0]?.message ?? '', /Info\.plist is 2147483648 bytes; macOS reads only the first 1024/);
  const report = await checkBundle(path);
  t.true(report.problems.some((problem) => /Info\.plist is 2147483648 bytes/.test(problem.message)));
});

test('a FIFO Info.plist falls back to Info.bckup with a warning (no hang)', async (t) => {
  const { path } = await setup(t);
  await mkfifo(join(path, 'Info.plist'));
  const warnings = new WarningList();
  const bundle = await within(t, SparseBundle.open(path, { readOnly: true, onWarning: warnings.sink }));
  await bundle.close();
  t.regex(warnings.items[0]?.message ?? '', /Info\.plist is a FIFO, not a regular file/);
});

test('a snapshot never hard-links a symlinked band', async (t) => {
  const { path, outside, band } = await setup(t);
  await rm(band(1));
  await symlink(outside, band(1));
  const bundle = await SparseBundle.open(path, { onWarning: () => undefined });
  try {
    await t.throwsAsync(new BundleSession(bundle).snapshots.create('before'), { message: /^SBM_BAD_BAND: band 1 .* is a symlink/ });
    t.deepEqual(await new BundleSession(bundle).snapshots.list(), []);
  } finally {
    await bundle.close();
  }
});

test('sbm check reports symlinked and special band files, a symlinked bands/ and a FIFO lock as problems', async (t) => {
  const { dir, path, outside, band } = await setup(t);
  await rm(band(1));
  await symlink(outside, band(1));
  await mkfifo(band(2));
  await mkfifo(join(path, 'lock'));
  const report = await within(t, checkBundle(path));
  const problems = report.problems.map((problem) => `${problem.code} ${problem.message}`);
  t.true(problems.includes('SBM_BAD_BAND bands/1 is a symlink, not a regular file; sbm refuses to read or write it'), problems.join('\n'));
  t.true(problems.includes('SBM_BAD_BAND bands/2 is a FIFO, not a regular file; sbm refuses to read or write it'), problems.join('\n'));
  t.true(problems.includes('SBM_CORRUPT lock is a FIFO, not a regular file'), problems.join('\n'));

  const elsewhere = join(dir, 'elsewhere');
  await rename(join(path, 'bands'), elsewhere);
  await symlink(elsewhere, join(path, 'bands'));
  const again = await within(t, checkBundle(path));
  t.true(again.problems.some((problem) => problem.code === 'SBM_BAD_BAND' && /^bands\/ is a symlink/.test(problem.message)));
});

test('backup band reads refuse a symlinked or FIFO band instead of copying what it points at', async (t) => {
  const { dir, outside, band } = await setup(t);
  await rm(band(1));
  await symlink(outside, band(1));
  await t.throwsAsync(copyBandHashing(band(1), join(dir, 'copy-1')), { message: /^SBM_BAD_BAND: .* is a symlink/ });
  await t.throwsAsync(access(join(dir, 'copy-1')), { code: 'ENOENT' });
  await mkfifo(band(2));
  await within(t, t.throwsAsync(hashFile(band(2)), { message: /^SBM_BAD_BAND: .* is a FIFO/ }));
  t.is((await hashFile(band(0))).size, MIB);
});

test('a snapshot folder that is a symlink to a bundle elsewhere is neither opened nor reverted to', async (t) => {
  const { dir, path } = await setup(t);
  const elsewhere = join(dir, 'elsewhere.sparsebundle');
  const other = await SparseBundle.create(elsewhere, { sizeBytes: 4 * MIB, bandSizeBytes: MIB });
  await other.write(0, Buffer.from('not this disk'));
  await other.close();
  const bundle = await SparseBundle.open(path);
  try {
    const live = await bundle.read(0, MIB);
    await new BundleSession(bundle).snapshots.create('real');
    await rm(join(new BundleSession(bundle).snapshots.directory, 'real.sparsebundle'), { recursive: true });
    await symlink(elsewhere, join(new BundleSession(bundle).snapshots.directory, 'real.sparsebundle'));
    await t.throwsAsync(new BundleSession(bundle).snapshots.open('real'), {
      message: /^SBM_CORRUPT: .*real\.sparsebundle is a symlink, not a folder/,
    });
    await t.throwsAsync(new BundleSession(bundle).snapshots.revert('real'), { message: /^SBM_CORRUPT/ });
    t.true((await bundle.read(0, MIB)).equals(live), 'the live disk is unchanged');
  } finally {
    await bundle.close();
  }
});

test('a snapshot whose bands/ is a symlink is not reverted to (no outside file is linked into the bundle)', async (t) => {
  const { dir, path } = await setup(t);
  const bundle = await SparseBundle.open(path);
  try {
    const live = await bundle.read(0, 2 * MIB);
    await new BundleSession(bundle).snapshots.create('s');
    const snapshotBands = join(new BundleSession(bundle).snapshots.pathOf('s'), 'bands');
    const elsewhere = join(dir, 'elsewhere-bands');
    await mkdir(elsewhere);
    await writeFile(join(elsewhere, '0'), 'outside data');
    await rm(snapshotBands, { recursive: true });
    await symlink(elsewhere, snapshotBands);
    await t.throwsAsync(new BundleSession(bundle).snapshots.revert('s'), { message: /^SBM_BAD_BAND: .*bands is a symlink, not a folder/ });
    t.true((await bundle.read(0, 2 * MIB)).equals(live));
  } finally {
    await bundle.close();
  }
});
