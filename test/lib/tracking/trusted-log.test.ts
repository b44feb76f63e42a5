import test from 'ava';
import { join } from 'node:path';
import { appendFile, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../../lib/errors.js';
import { encodeChangeRecord, scanChangeLog } from '../../../lib/tracking/change-log.js';
import { COMPACT_MIN_RECORDS, STAT_CACHE_FLAG_LOG_TRUSTED, STAT_CACHE_HEADER_SIZE } from '../../../lib/tracking/constants.js';
import { STAT_CACHE_HEADER } from '../../../lib/tracking/stat-cache.js';
import { epochTagOf } from '../../../lib/tracking/tracking-state.js';
import { WarningList } from '../../../lib/warnings.js';
import { tempDir } from '../../helpers/tools.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';

const MiB = 1024 * 1024;

async function files(path: string) {
  const log = await readFile(join(path, '.sbm', 'changes.log'));
  const header = STAT_CACHE_HEADER.decode((await readFile(join(path, '.sbm', 'stat-cache'))).subarray(0, STAT_CACHE_HEADER_SIZE));
  const state = JSON.parse(await readFile(join(path, '.sbm', 'state'), 'utf8')) as { epochId: string; generation: number };
  return { log, header, state, tag: epochTagOf(state.epochId) };
}

/** Two sessions of writes around a token, each ended by a clean close. */
async function bundleWithSessions(t: Parameters<typeof tempDir>[0]) {
  const path = join(await tempDir(t), 'disk.sparsebundle');
  let bundle = await SparseBundle.create(path, { sizeBytes: 8 * MiB, bandSizeBytes: MiB });
  for (let band = 0; band < 6; band++) await bundle.write(band * MiB, Buffer.alloc(100, band + 1));
  const token = await new BundleSession(bundle).token();
  await bundle.write(2 * MiB, Buffer.from('two'));
  await bundle.write(3 * MiB, Buffer.from('three'));
  await bundle.close();
  bundle = await SparseBundle.open(path);
  await bundle.write(4 * MiB, Buffer.from('four'));
  const report = await new BundleSession(bundle).changedBands(token);
  t.deepEqual(
    report.bands.map((band) => band.bandIndex),
    [2, 3, 4],
  );
  await bundle.close();
  return { path, token };
}

test('a clean session leaves a trusted log point; scanning from it gives the same answers', async (t) => {
  const { path, token } = await bundleWithSessions(t);
  const { log, header, tag } = await files(path);
  t.true((header.flags & STAT_CACHE_FLAG_LOG_TRUSTED) !== 0);
  // The last session's own save vouches for the point before it (its slots and header share one fdatasync).
  t.true(header.logTrustedBytes >= 6 * 32 && header.logTrustedBytes <= log.length, `${header.logTrustedBytes} of ${log.length}`);
  t.is(header.logTrustedCrc, crc32(log.subarray(0, header.logTrustedBytes)) >>> 0);
  const point = { bytes: header.logTrustedBytes, crc: header.logTrustedCrc };
  const fast = scanChangeLog(log, tag, point);
  const full = scanChangeLog(log, tag);
  t.deepEqual(fast.trustedPoint, point);
  t.is(full.trustedPoint, undefined);
  t.deepEqual([...fast.index.all()].sort(), [...full.index.all()].sort());
  t.deepEqual([fast.recordCount, fast.validBytes, fast.validCrc], [full.recordCount, full.validBytes, full.validCrc]);
  for (let generation = 0; generation < 12; generation++)
    t.deepEqual(fast.index.bandsNewerThan(generation), full.index.bandsNewerThan(generation));
  // A wrong point is ignored, not trusted.
  t.is(scanChangeLog(log, tag, { bytes: point.bytes, crc: (point.crc ^ 1) >>> 0 }).trustedPoint, undefined);
  t.is(scanChangeLog(log, tag, { bytes: log.length + 32, crc: point.crc }).trustedPoint, undefined);
  const reader = await SparseBundle.open(path, { readOnly: true });
  t.deepEqual(
    (await new BundleSession(reader).changedBands(token)).bands.map((band) => band.bandIndex),
    [2, 3, 4],
  );
  await reader.close();
});

test('damage inside the trusted part of the log is still found: tracking resets, old tokens are refused', async (t) => {
  const { path, token } = await bundleWithSessions(t);
  const { log } = await files(path);
  log.writeUInt32LE((log.readUInt32LE(24) ^ 1) >>> 0, 24); // first record's band: its checksum fails
  await writeFile(join(path, '.sbm', 'changes.log'), log);
  const bundle = await SparseBundle.open(path);
  t.teardown(() => bundle.close());
  const error = await t.throwsAsync(new BundleSession(bundle).changedBands(token));
  t.true(isSbmError(error, 'SBM_TOKEN_STALE'), String(error));
  t.regex(String(error?.message), /change log damaged/);
});

test('records appended past the trusted point by another writer are checked and counted', async (t) => {
  const { path, token } = await bundleWithSessions(t);
  const { tag, state } = await files(path);
  // An older sbm (or a crashed session) appended a record without saving the stat cache.
  await appendFile(join(path, '.sbm', 'changes.log'), encodeChangeRecord(tag, state.generation, 7));
  const bundle = await SparseBundle.open(path);
  t.deepEqual(
    (await new BundleSession(bundle).changedBands(token)).bands.map((band) => [band.bandIndex, band.deleted]),
    [
      [2, false],
      [3, false],
      [4, false],
      [7, true],
    ],
  );
  await bundle.close();
  // A log cut below what sbm made durable (restored from elsewhere) may have lost records: refused.
  const { header } = await files(path);
  await truncate(join(path, '.sbm', 'changes.log'), header.logTrustedBytes - 32);
  const warnings = new WarningList();
  const reopened = await SparseBundle.open(path, { onWarning: warnings.sink });
  t.teardown(() => reopened.close());
  t.true(warnings.items.some((warning) => warning.code === 'SBM_TRACKING_RESET'));
  t.true(isSbmError(await t.throwsAsync(new BundleSession(reopened).changedBands(token)), 'SBM_TOKEN_STALE'));
});

test('a session that only asks writes .sbm/state once (at its token), and the first write moves the generation first', async (t) => {
  const { path, token } = await bundleWithSessions(t);
  const before = await files(path);
  const reader = await SparseBundle.open(path); // read-write, but no change
  t.deepEqual(
    await readFile(join(path, '.sbm', 'state'), 'utf8'),
    `${JSON.stringify(before.state, null, 2)}\n`,
    'open left the state alone',
  );
  const report = await new BundleSession(reader).changedBands(token);
  t.is(report.token?.split(':')[3], String(before.state.generation), 'the token closes the generation left open by the last session');
  await reader.close();
  const afterQuery = await files(path);
  t.is(afterQuery.state.generation, before.state.generation + 1);
  const writer = await SparseBundle.open(path);
  await writer.write(5 * MiB, Buffer.from('five'));
  const afterWrite = await files(path);
  t.is(afterWrite.state.generation, afterQuery.state.generation + 1, 'the write started a generation');
  const last = afterWrite.log.subarray(afterWrite.log.length - 32);
  t.is(Number(last.readBigUInt64LE(16)), afterWrite.state.generation, 'its record carries the new generation');
  t.true(afterWrite.state.generation > afterQuery.header.statGeneration, 'newer than every saved stat');
  t.deepEqual(
    (await new BundleSession(writer).changedBands(report.token as string)).bands.map((band) => band.bandIndex),
    [5],
  );
  await writer.close();
});

test('a log with many records per band is compacted on open, with the same answers', async (t) => {
  const { path, token } = await bundleWithSessions(t);
  const { tag, state, log } = await files(path);
  const records: Buffer[] = [];
  for (let index = 0; index < COMPACT_MIN_RECORDS; index++)
    records.push(encodeChangeRecord(tag, 1 + (index % state.generation), index % 3));
  await appendFile(join(path, '.sbm', 'changes.log'), Buffer.concat(records));
  const expected = scanChangeLog(Buffer.concat([log, ...records]), tag).index.all();
  const bundle = await SparseBundle.open(path);
  t.teardown(() => bundle.close());
  const compacted = await files(path);
  t.is(compacted.log.length, expected.size * 32, 'one record per band');
  t.deepEqual([...scanChangeLog(compacted.log, tag).index.all()].sort(), [...expected].sort());
  t.deepEqual(
    (await new BundleSession(bundle).changedBands(token)).bands.map((band) => band.bandIndex),
    [0, 1, 2, 3, 4],
  );
  t.true((await stat(join(path, '.sbm', 'changes.log'))).size >= expected.size * 32);
});
