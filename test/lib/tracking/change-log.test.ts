import test from 'ava';
import { join } from 'node:path';
import { appendFile, mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { CHANGE_RECORD, ChangeLog, encodeChangeRecord, scanChangeLog } from '../../../lib/tracking/change-log.js';
import { CHANGE_RECORD_SIZE } from '../../../lib/tracking/constants.js';
import { tempDir } from '../../helpers/tools.js';

test('CHANGE_RECORD is declared as 32 bytes and round-trips', (t) => {
  t.is(CHANGE_RECORD.sizeBytes, CHANGE_RECORD_SIZE);
  const record = encodeChangeRecord(0xabcdef01, 7, 131071);
  t.is(record.length, 32);
  t.like(CHANGE_RECORD.decode(record), { epochTag: 0xabcdef01, generation: 7, bandIndex: 131071, kind: 1 });
});

test('concurrent appends share fdatasyncs (group commit) and all become durable', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'changes.log');
  const log = await ChangeLog.openForAppend(path, 0, 0, dir);
  // Count fdatasync calls on the log's handle.
  const probe = await open(path, 'r');
  const prototype = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
  await probe.close();
  const original = prototype.datasync;
  let syncs = 0;
  prototype.datasync = function (this: unknown) {
    syncs++;
    return original.call(this);
  };
  t.teardown(() => {
    prototype.datasync = original;
  });
  await Promise.all(Array.from({ length: 64 }, (_, band) => log.append(encodeChangeRecord(1, 3, band))));
  prototype.datasync = original;
  await log.close();
  t.true(syncs >= 1 && syncs < 64, `${syncs} fdatasyncs for 64 records`);
  const scan = scanChangeLog(await readFile(path), 1);
  t.is(scan.recordCount, 64);
  t.false(scan.damaged);
});

test('a torn tail is dropped and cut off; garbage followed by valid records is damage', async (t) => {
  const dir = await tempDir(t);
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'changes.log');
  await writeFile(path, Buffer.concat([encodeChangeRecord(5, 1, 1), encodeChangeRecord(5, 2, 9)]));
  await appendFile(path, encodeChangeRecord(5, 2, 10).subarray(0, 19)); // partial record
  const torn = scanChangeLog(await readFile(path), 5);
  t.false(torn.damaged);
  t.is(torn.validBytes, 64);
  t.deepEqual(
    [...torn.index.all()],
    [
      [1, 1],
      [9, 2],
    ],
  );
  const log = await ChangeLog.openForAppend(path, torn.validBytes, torn.validCrc, dir);
  await log.append(encodeChangeRecord(5, 3, 1));
  await log.close();
  t.is((await stat(path)).size, 96);
  t.deepEqual(
    [...scanChangeLog(await readFile(path), 5).index.all()],
    [
      [1, 3],
      [9, 2],
    ],
  );
  const bytes = await readFile(path);
  bytes.writeUInt8(bytes.readUInt8(40) ^ 0xff, 40); // corrupt the second record
  const damaged = scanChangeLog(bytes, 5);
  t.true(damaged.damaged);
  t.true(scanChangeLog(await readFile(path), 6).damaged, 'records of another epoch mean the log is not ours');
});
