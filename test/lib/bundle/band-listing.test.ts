import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bandIndexesOf, listBandFolder, listBandFolderSync } from '../../../lib/bundle/band-listing.js';
import { WarningList } from '../../../lib/warnings.js';
import { tempDir } from '../../helpers/tools.js';

test('one filter: canonical lowercase hex without leading zeros, within the band count; the rest are strays', (t) => {
  const warnings = new WarningList();
  const names = ['0', '1', 'a', 'ff', '100', '01', 'A', '1f.tmp', '', '-1', ' 1', '0x2', '10000000000000'];
  t.deepEqual(bandIndexesOf(names, 0x100, warnings.sink), [0, 1, 0xa, 0xff]);
  t.deepEqual(
    warnings.items.map((w) => [w.code, w.data?.name]),
    [
      ['SBM_BAND_PAST_END', '100'],
      ['SBM_STRAY_FILE', '01'],
      ['SBM_STRAY_FILE', 'A'],
      ['SBM_STRAY_FILE', '1f.tmp'],
      ['SBM_STRAY_FILE', ''],
      ['SBM_STRAY_FILE', '-1'],
      ['SBM_STRAY_FILE', ' 1'],
      ['SBM_STRAY_FILE', '0x2'],
      ['SBM_STRAY_FILE', '10000000000000'],
    ],
  );
});

test('a folder is listed the same way synchronously and not; a missing one is undefined', async (t) => {
  const dir = await tempDir(t);
  const bands = join(dir, 'bands');
  await mkdir(bands);
  for (const name of ['2', '3', '03', 'notes.txt', '40']) await writeFile(join(bands, name), 'x');
  const asynchronous = new WarningList();
  const synchronous = new WarningList();
  t.deepEqual((await listBandFolder(bands, 0x40, asynchronous.sink))?.sort(), [2, 3]);
  t.deepEqual(listBandFolderSync(bands, 0x40, synchronous.sink)?.sort(), [2, 3]);
  t.deepEqual(asynchronous.items.map((w) => w.code).sort(), ['SBM_BAND_PAST_END', 'SBM_STRAY_FILE', 'SBM_STRAY_FILE']);
  t.deepEqual(synchronous.items.map((w) => w.code).sort(), asynchronous.items.map((w) => w.code).sort());
  t.is(await listBandFolder(join(dir, 'missing'), 1, asynchronous.sink), undefined);
  t.is(listBandFolderSync(join(dir, 'missing'), 1, asynchronous.sink), undefined);
});
