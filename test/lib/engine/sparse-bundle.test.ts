import test from 'ava';
import { cp, link, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { renderInfoPlist } from '../../../lib/bundle/info-plist.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { WarningList } from '../../../lib/warnings.js';
import { HDIUTIL_FIXTURE, seededBytes, tempDir } from '../../helpers/tools.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';

const MIB = 1024 * 1024;

async function newBundle(t: Parameters<typeof tempDir>[0], sizeBytes = 8 * MIB, bandSizeBytes = MIB) {
  const dir = await tempDir(t);
  const path = join(dir, 'disk.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes, bandSizeBytes });
  t.teardown(() => bundle.close());
  return { dir, path, bundle };
}

async function fixtureCopy(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t);
  const path = join(dir, 'fixture.sparsebundle');
  await cp(HDIUTIL_FIXTURE, path, { recursive: true });
  return path;
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

test('create writes the hdiutil layout and nothing else', async (t) => {
  const { path, bundle } = await newBundle(t, 40980480, 8 * MIB);
  await bundle.close();
  t.deepEqual((await readdir(path)).sort(), ['.sbm', 'Info.bckup', 'Info.plist', 'bands', 'lock', 'token']);
  const plistBytes = await readFile(join(path, 'Info.plist'));
  t.true(plistBytes.equals(renderInfoPlist({ bandSizeBytes: 8 * MIB, sizeBytes: 40980480, version: 1 })));
  t.true((await readFile(join(path, 'Info.bckup'))).equals(plistBytes));
  t.is((await stat(join(path, 'token'))).size, 0);
  t.is((await stat(join(path, 'lock'))).size, 0);
  t.deepEqual(await readdir(join(path, 'bands')), []);
});

test('create refuses an existing path and bad geometry', async (t) => {
  const { path } = await newBundle(t);
  await t.throwsAsync(SparseBundle.create(path, { sizeBytes: MIB }), { message: /^SBM_EXISTS/ });
  const dir = await tempDir(t);
  await t.throwsAsync(SparseBundle.create(join(dir, 'a'), { sizeBytes: MIB, bandSizeBytes: 4096 }), { message: /^SBM_BAD_BAND_SIZE/ });
  await t.throwsAsync(SparseBundle.create(join(dir, 'b'), { sizeBytes: 1000 }), { message: /^SBM_BAD_SIZE/ });
});

test('bands appear only for non-zero data, named in lowercase hex, never grown by trailing zeros', async (t) => {
  const { path, bundle } = await newBundle(t, 20 * MIB, MIB);
  await bundle.write(0, Buffer.alloc(MIB)); // zeros into a missing band: nothing
  t.deepEqual(await readdir(join(path, 'bands')), []);
  const data = Buffer.concat([Buffer.from('abc'), Buffer.alloc(5000)]);
  await bundle.write(10 * MIB + 100, data);
  t.deepEqual(await readdir(join(path, 'bands')), ['a']);
  t.is((await stat(join(path, 'bands', 'a'))).size, 103);
  t.deepEqual(await bundle.read(10 * MIB + 98, 6), Buffer.from([0, 0, 97, 98, 99, 0]));
  // A zero write inside existing bytes must still land.
  await bundle.write(10 * MIB + 101, Buffer.alloc(1));
  t.deepEqual(await bundle.read(10 * MIB + 100, 3), Buffer.from([97, 0, 99]));
});

test('writes and reads cross band edges; reads past the disk are refused', async (t) => {
  const { bundle } = await newBundle(t, 4 * MIB, MIB);
  const data = seededBytes(2 * MIB + 10, 7);
  await bundle.write(MIB - 5, data);
  t.true((await bundle.read(MIB - 5, data.length)).equals(data));
  t.deepEqual(bundle.bandsPresent(), [0, 1, 2, 3]);
  await t.throwsAsync(bundle.read(4 * MIB - 1, 2), { message: /^SBM_OUT_OF_RANGE/ });
  await t.throwsAsync(bundle.write(-1, Buffer.alloc(1)), { message: /^SBM_OUT_OF_RANGE/ });
});

test('trim deletes whole bands and zeroes or truncates partial ones', async (t) => {
  const { path, bundle } = await newBundle(t, 4 * MIB, MIB);
  await bundle.write(0, seededBytes(4 * MIB, 3));
  await bundle.trim(MIB, MIB); // whole band 1
  t.deepEqual(bundle.bandsPresent(), [0, 2, 3]);
  await bundle.trim(2 * MIB + 100, 200); // inside band 2
  t.is((await stat(join(path, 'bands', '2'))).size, MIB);
  t.true((await bundle.read(2 * MIB + 100, 200)).equals(Buffer.alloc(200)));
  await bundle.writeZeroes(3 * MIB + 4096, MIB - 4096); // tail of band 3: truncate
  t.is((await stat(join(path, 'bands', '3'))).size, 4096);
  await bundle.trim(3 * MIB, 4096); // the rest of band 3: delete
  t.deepEqual(bundle.bandsPresent(), [0, 2]);
  t.true((await bundle.read(MIB, MIB)).equals(Buffer.alloc(MIB)));
});

test('extents report holes for missing bands and past short band ends', async (t) => {
  const { bundle } = await newBundle(t, 4 * MIB, MIB);
  await bundle.write(MIB, seededBytes(8192, 1));
  const extents = await bundle.extents(0, 4 * MIB);
  t.deepEqual(extents, [
    { offset: 0, length: MIB, kind: 'hole' },
    { offset: MIB, length: 8192, kind: 'data' },
    { offset: MIB + 8192, length: 3 * MIB - 8192, kind: 'hole' },
  ]);
});

test('reads the hdiutil fixture: GPT header in band 0, missing bands 5 and b read as zeros', async (t) => {
  const bundle = await SparseBundle.open(HDIUTIL_FIXTURE, { readOnly: true });
  t.teardown(() => bundle.close());
  t.is(bundle.sizeBytes, 100020736);
  t.is(bundle.bandSizeBytes, 8388608);
  t.deepEqual(bundle.bandsPresent(), [0, 6]);
  t.is((await bundle.read(512, 8)).toString('latin1'), 'EFI PART');
  t.true((await bundle.read(5 * 8388608, 8388608)).equals(Buffer.alloc(8388608)));
  const lastBand = 0xb * 8388608;
  t.true((await bundle.read(lastBand, bundle.sizeBytes - lastBand)).equals(Buffer.alloc(bundle.sizeBytes - lastBand)));
  // band 0 is short (3 MiB): the rest of it reads as zeros
  t.true((await bundle.read(3 * MIB, MIB)).equals(Buffer.alloc(MIB)));
  const band0 = await bundle.read(0, 3145728);
  t.is(sha256(band0), '57e6a23f2f290370c26add19826b3858d031655625b2631e90a7c55f61412881');
  await t.throwsAsync(bundle.write(0, Buffer.alloc(1, 1)), { message: /^SBM_READ_ONLY/ });
});

test('mapped/: bits are set for written blocks and never cleared', async (t) => {
  const path = await fixtureCopy(t);
  const before6 = await readFile(join(path, 'mapped', '6'));
  const bundle = await SparseBundle.open(path);
  await bundle.write(6 * 8388608 + 40960 + 10, Buffer.from('x')); // block 10 of band 6
  await bundle.trim(6 * 8388608, 8388608); // deleting the band must not clear bits
  await bundle.write(2 * 8388608 + 4095, Buffer.from('yz')); // blocks 0 and 1 of band 2 (no bitmap yet)
  await bundle.close();
  const after6 = await readFile(join(path, 'mapped', '6'));
  for (let index = 0; index < before6.length; index++) t.is((after6[index] ?? 0) & (before6[index] ?? 0), before6[index] ?? 0);
  t.is((after6[1] ?? 0) & 0b100, 0b100);
  const bitmap2 = await readFile(join(path, 'mapped', '2'));
  t.is(bitmap2.length, 256);
  t.is(bitmap2[0], 0b11);
  t.true(bitmap2.subarray(1).equals(Buffer.alloc(255)));
});

test('mapped/ is never created by sbm', async (t) => {
  const { path, bundle } = await newBundle(t);
  await bundle.write(0, Buffer.from('data'));
  await bundle.close();
  await t.throwsAsync(stat(join(path, 'mapped')), { code: 'ENOENT' });
});

test('open falls back to Info.bckup when Info.plist is unreadable or too long, with a warning', async (t) => {
  const path = await fixtureCopy(t);
  for (const broken of ['garbage', `<?xml version="1.0"?><plist><dict>${' '.repeat(1100)}</dict></plist>`]) {
    await writeFile(join(path, 'Info.plist'), broken);
    const warnings = new WarningList();
    const bundle = await SparseBundle.open(path, { readOnly: true, onWarning: warnings.sink });
    t.is(bundle.sizeBytes, 100020736);
    t.is(warnings.items[0]?.code, 'SBM_PLIST_FALLBACK');
    await bundle.close();
  }
  await writeFile(join(path, 'Info.bckup'), 'garbage');
  await t.throwsAsync(SparseBundle.open(path, { readOnly: true }), { message: /^SBM_BAD_PLIST/ });
});

test('unknown root entries are ignored; stray names in bands/ are warned about', async (t) => {
  const path = await fixtureCopy(t);
  await writeFile(join(path, '.DS_Store'), 'x');
  await mkdir(join(path, 'com.apple.TimeMachine.MachineID.plist'));
  await writeFile(join(path, 'bands', '1f.tmp'), 'x');
  const warnings = new WarningList();
  const bundle = await SparseBundle.open(path, { readOnly: true, onWarning: warnings.sink });
  t.deepEqual(bundle.bandsPresent(), [0, 6]);
  // The fixture predates macOS's `lock` file, so a read-only open also warns that it cannot lock.
  t.deepEqual(warnings.items.map((w) => w.code).sort(), ['SBM_NO_LOCK', 'SBM_STRAY_FILE']);
  await bundle.close();
});

test('encrypted bundles and out-of-limit geometry are refused', async (t) => {
  const path = await fixtureCopy(t);
  await writeFile(join(path, 'token'), Buffer.concat([Buffer.from('encrcdsa'), Buffer.alloc(64)]));
  await t.throwsAsync(SparseBundle.open(path, { readOnly: true }), { message: /^SBM_ENCRYPTED.*encrcdsa/ });
  await writeFile(join(path, 'token'), '');
  const bad = renderInfoPlist({ bandSizeBytes: 12345, sizeBytes: 100020736, version: 1 });
  await writeFile(join(path, 'Info.plist'), bad);
  await writeFile(join(path, 'Info.bckup'), bad);
  await t.throwsAsync(SparseBundle.open(path, { readOnly: true }), { message: /^SBM_BAD_BAND_SIZE/ });
});

test('a second writer in the same process is refused at once; readers share', async (t) => {
  const { path, bundle } = await newBundle(t);
  await t.throwsAsync(SparseBundle.open(path), { message: new RegExp(`^SBM_LOCKED: .*in use by pid ${process.pid}`) });
  await bundle.close();
  const readerA = await SparseBundle.open(path, { readOnly: true });
  const readerB = await SparseBundle.open(path, { readOnly: true });
  await t.throwsAsync(SparseBundle.open(path), { message: /^SBM_LOCKED/ });
  await readerA.close();
  await readerB.close();
  const writer = await SparseBundle.open(path);
  await writer.close();
  await writer.close(); // idempotent
  await t.throwsAsync(writer.read(0, 1), { message: /^SBM_CLOSED/ });
});

test('a band shared by a hard link is copied before it is changed (copy-on-write)', async (t) => {
  const { dir, path, bundle } = await newBundle(t, 4 * MIB, MIB);
  const original = seededBytes(MIB, 11);
  await bundle.write(MIB, original);
  await bundle.close();
  const frozen = join(dir, 'frozen-band');
  await link(join(path, 'bands', '1'), frozen);
  const reopened = await SparseBundle.open(path);
  await reopened.write(MIB + 10, Buffer.from('changed'));
  await reopened.trim(MIB + 4096, 4096);
  await reopened.close();
  t.true((await readFile(frozen)).equals(original));
  t.is((await stat(frozen)).nlink, 1);
  const live = await readFile(join(path, 'bands', '1'));
  t.is(live.subarray(10, 17).toString(), 'changed');
  t.deepEqual(await readdir(join(path, 'bands')), ['1']);
});

test('resize grows and shrinks, cutting bands past the new end', async (t) => {
  const { path, bundle } = await newBundle(t, 4 * MIB, MIB);
  await bundle.write(0, seededBytes(4 * MIB, 5));
  await new BundleSession(bundle).resize(2 * MIB + 4096);
  t.deepEqual(bundle.bandsPresent(), [0, 1, 2]);
  t.is((await stat(join(path, 'bands', '2'))).size, 4096);
  await new BundleSession(bundle).resize(64 * MIB);
  t.is(bundle.sizeBytes, 64 * MIB);
  t.true((await bundle.read(2 * MIB + 4096, 4096)).equals(Buffer.alloc(4096)));
  await bundle.close();
  const plistBytes = await readFile(join(path, 'Info.plist'));
  t.true(plistBytes.equals(renderInfoPlist({ bandSizeBytes: MIB, sizeBytes: 64 * MIB, version: 1 })));
  t.true((await readFile(join(path, 'Info.bckup'))).equals(plistBytes));
});

test('the band pool stays bounded while many bands are written and read concurrently', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'pool.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 64 * MIB, bandSizeBytes: MIB });
  await bundle.close();
  const small = await SparseBundle.open(path, { maxOpenBands: 3 });
  const writes = [];
  for (let band = 0; band < 64; band++) writes.push(small.write(band * MIB + band, Buffer.from([band + 1])));
  await Promise.all(writes);
  for (let band = 0; band < 64; band++) t.deepEqual(await small.read(band * MIB + band, 1), Buffer.from([band + 1]));
  await small.close();
  t.is((await readdir(join(path, 'bands'))).length, 64);
});

test('an untracked bundle (still being built) refuses tokens; its first ordinary open starts tracking', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'built.sparsebundle');
  const building = await SparseBundle.create(path, { sizeBytes: 4 * MIB, bandSizeBytes: MIB, untracked: true });
  await building.write(0, Buffer.from('data'));
  await t.throwsAsync(new BundleSession(building).token(), { message: /^SBM_UNSUPPORTED: .*without change tracking/ });
  await building.close();
  await t.throwsAsync(stat(join(path, '.sbm', 'changes.log')), { code: 'ENOENT' });
  const bundle = await SparseBundle.open(path);
  const token = await new BundleSession(bundle).token();
  await bundle.write(2 * MIB, Buffer.from('later'));
  const report = await new BundleSession(bundle).changedBands(token);
  t.deepEqual(
    report.bands.map((band) => band.bandIndex),
    [2],
  );
  await bundle.close();
});

test('deferBandListing: bands/ is listed at first need, with the same answers and warnings', async (t) => {
  const path = await fixtureCopy(t);
  await writeFile(join(path, 'lock'), '');
  await writeFile(join(path, 'bands', '1f.tmp'), 'x');
  const eagerWarnings = new WarningList();
  const eager = await SparseBundle.open(path, { readOnly: true, onWarning: eagerWarnings.sink });
  const expected = { present: eager.bandsPresent(), data: sha256(await eager.read(0, eager.sizeBytes)) };
  await eager.close();
  t.deepEqual(
    eagerWarnings.items.map((w) => w.code),
    ['SBM_STRAY_FILE'],
  );

  const warnings = new WarningList();
  const bundle = await SparseBundle.open(path, { deferBandListing: true, onWarning: warnings.sink });
  t.teardown(() => bundle.close());
  t.deepEqual(
    warnings.items.map((w) => w.code),
    [],
    'nothing listed yet',
  );
  t.is(sha256(await bundle.read(0, bundle.sizeBytes)), expected.data);
  t.deepEqual(
    warnings.items.map((w) => w.code),
    ['SBM_STRAY_FILE'],
    'the first read listed bands/',
  );
  t.deepEqual(bundle.bandsPresent(), expected.present);
  await bundle.write(5 * 8 * MIB, Buffer.from('new band'));
  t.deepEqual(
    bundle.bandsPresent(),
    [...expected.present, 5].sort((a, b) => a - b),
  );
});

test('deferBandListing: a write before any listing still knows existing bands (no truncation)', async (t) => {
  const { path, bundle } = await newBundle(t);
  await bundle.write(2 * MIB, Buffer.alloc(MIB, 0xab));
  await bundle.close();
  const reopened = await SparseBundle.open(path, { deferBandListing: true });
  await reopened.write(2 * MIB + 10, Buffer.from('xy'));
  const expected = Buffer.alloc(MIB, 0xab);
  expected.write('xy', 10);
  t.true((await reopened.read(2 * MIB, MIB)).equals(expected));
  await reopened.close();
});

test('deferBandListing with bands/ missing warns at open and creates it, as an eager open does', async (t) => {
  const { path, bundle } = await newBundle(t);
  await bundle.close();
  await rm(join(path, 'bands'), { recursive: true });
  const warnings = new WarningList();
  const reopened = await SparseBundle.open(path, { deferBandListing: true, onWarning: warnings.sink });
  t.true(warnings.items.some((w) => w.code === 'SBM_NO_BANDS_DIR'));
  t.true((await stat(join(path, 'bands'))).isDirectory());
  t.deepEqual(reopened.bandsPresent(), []);
  await reopened.close();
});
