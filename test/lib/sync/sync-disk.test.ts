// The hash record must never make sync skip a band that differs: bundle writes since the record
// (through sbm, or behind its back), a refused token and a damaged record all fall back to reading.

import test, { type ExecutionContext } from 'ava';
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { type SyncResult, syncDisk } from '../../../lib/sync/sync-disk.js';
import { syncRecordPath } from '../../../lib/sync/sync-record.js';
import { localSyncTarget } from '../../../lib/sync/sync-target.js';
import type { SbmWarning } from '../../../lib/warnings.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';

const MIB = 1024 * 1024;
const SIZE = 8 * MIB;

async function rig(t: ExecutionContext): Promise<{ disk: string; bundle: string; content: Buffer }> {
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.raw');
  const content = Buffer.alloc(SIZE);
  seededBytes(3 * MIB, 7).copy(content, 2 * MIB);
  await writeFile(disk, content);
  const bundle = join(dir, 'disk.sparsebundle');
  await (await SparseBundle.create(bundle, { sizeBytes: SIZE, bandSizeBytes: MIB })).close();
  return { disk, bundle, content };
}

async function sync(disk: string, bundle: string, options: { full?: boolean; warnings?: SbmWarning[] } = {}): Promise<SyncResult> {
  const reader = await openImage(disk);
  const target = await SparseBundle.open(bundle);
  try {
    return await syncDisk(reader, localSyncTarget(target), {
      sourcePath: disk,
      sourceFiles: [disk],
      full: options.full === true,
      onWarning: (warning) => options.warnings?.push(warning),
    });
  } finally {
    await target.close();
    await reader.close();
  }
}

async function assertEqual(t: ExecutionContext, bundle: string, content: Buffer): Promise<void> {
  const target = await SparseBundle.open(bundle, { readOnly: true });
  try {
    t.true((await target.read(0, SIZE)).equals(content), 'the bundle equals the disk');
  } finally {
    await target.close();
  }
}

test('a band written through sbm since the record is compared again, in delta and in full mode', async (t) => {
  const { disk, bundle, content } = await rig(t);
  t.is((await sync(disk, bundle)).bandsWritten, 3);
  for (const full of [false, true]) {
    const target = await SparseBundle.open(bundle);
    await target.write(3 * MIB + 10, Buffer.from('not the disk'));
    await target.close();
    const result = await sync(disk, bundle, { full });
    t.is(result.mode, full ? 'full' : 'delta');
    t.is(result.bandsWritten, 1, 'the band written since is restored');
    await assertEqual(t, bundle, content);
  }
});

test('a band edited behind sbm’s back is found by the tracker and restored', async (t) => {
  const { disk, bundle, content } = await rig(t);
  await sync(disk, bundle);
  const band = await open(join(bundle, 'bands', '3'), 'r+');
  await band.write(Buffer.from('edited'), 0, 6, 4096);
  await band.close();
  const result = await sync(disk, bundle);
  t.is(result.bandsWritten, 1);
  await assertEqual(t, bundle, content);
});

test('a refused token or a damaged record means comparing every band against the bundle', async (t) => {
  const { disk, bundle, content } = await rig(t);
  await sync(disk, bundle);
  const record = JSON.parse(await readFile(syncRecordPath(bundle), 'utf8')) as { token: string };
  // A record whose token names another bundle: its hashes vouch for nothing.
  await writeFile(
    syncRecordPath(bundle),
    JSON.stringify({ ...record, token: record.token.replace(/:[0-9a-f-]{36}:/, ':00000000-0000-4000-8000-000000000000:') }),
  );
  const bundleBefore = await SparseBundle.open(bundle);
  await bundleBefore.write(4 * MIB, Buffer.from('x'));
  await bundleBefore.close();
  const foreign = await sync(disk, bundle);
  t.is(foreign.mode, 'full');
  t.is(foreign.bandsWritten, 1);
  t.is(foreign.bytesRead, 2 * SIZE, 'the whole (not sparse) raw disk and every band of the bundle');
  await assertEqual(t, bundle, content);

  await writeFile(syncRecordPath(bundle), '{"version":1,"token":');
  const warnings: SbmWarning[] = [];
  const damaged = await sync(disk, bundle, { warnings });
  t.is(damaged.mode, 'full');
  t.deepEqual(
    warnings.map((warning) => warning.code),
    ['SBM_SYNC_RECORD_IGNORED'],
  );
  await rm(syncRecordPath(bundle));
  t.is((await sync(disk, bundle)).mode, 'full', 'no record: full');
  const trusted = await sync(disk, bundle, { full: true });
  t.is(trusted.bytesRead, SIZE, 'with trusted hashes, only the source is read');
  await assertEqual(t, bundle, content);
});

test('the raw disk rewritten in place is a full compare; its record then allows a delta of nothing', async (t) => {
  const { disk, bundle } = await rig(t);
  await sync(disk, bundle);
  const changed = Buffer.alloc(SIZE);
  seededBytes(MIB, 9).copy(changed, 6 * MIB);
  await writeFile(disk, changed);
  const result = await sync(disk, bundle);
  t.is(result.mode, 'full');
  t.is(result.bandsWritten, 4, 'bands 2-4 zeroed, band 6 written');
  await assertEqual(t, bundle, changed);
  const none = await sync(disk, bundle);
  t.is(none.mode, 'delta');
  t.is(none.bytesRead, 0);
});

test('a source without layer information whose files are not all known is compared in full every run', async (t) => {
  const { disk, bundle } = await rig(t);
  const once = async () => {
    const reader = await openImage(disk);
    const target = await SparseBundle.open(bundle);
    try {
      return await syncDisk(reader, localSyncTarget(target), { sourcePath: disk });
    } finally {
      await target.close();
      await reader.close();
    }
  };
  await once();
  const again = await once();
  t.is(again.mode, 'full');
  t.is(again.bytesRead, SIZE, 'the hashes still spare the bundle side');
});
