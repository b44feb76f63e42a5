// `sbm sync` of Hyper-V and Virtual PC snapshot chains: a differencing VHDX (hand-built by
// vhdx-kit, as Hyper-V writes them) and a differencing VHD (vhd-kit) over parents made by
// qemu-img. The sync after a snapshot reads only the new layer's blocks; the bundle equals the
// chain as `sbm export` reads it (the readers are checked block state by block state in
// test/formats/vhdx and test/formats/vhd).

import test, { type ExecutionContext } from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT, PAYLOAD_BLOCK_ZERO } from '../../../formats/vhdx/constants.js';
import { guidToText } from '../../../formats/vhdx/guid.js';
import { VHDX_HEADER } from '../../../formats/vhdx/layouts.js';
import { requireTool, runSbm, seededBytes, tempDir } from '../../helpers/tools.js';
import { makeDifferencing, qemuVhd } from '../../formats/vhd/vhd-kit.js';
import { type BlockSpec, buildVhdx, currentHeaderOffset, qemuVhdx } from '../../formats/vhdx/vhdx-kit.js';
import { MIB, bundleBytes, emptyBundle, syncListingBands } from './sync-rig.js';

const SIZE = 8 * MIB;

/** The chain's bytes as `sbm export` reads them. */
async function chainBytes(t: ExecutionContext, disk: string, out: string): Promise<Buffer> {
  const converted = await runSbm(['export', disk, out, '--format', 'raw']);
  t.is(converted.exitCode, 0, converted.stderr);
  return readFile(out);
}

test('a Hyper-V snapshot: the differencing VHDX adds a layer, and the sync after it compares only its blocks', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const parent = join(dir, 'disk.vhdx');
  await qemuVhdx(parent, '8M', ['block_size=1M'], ['write -P 0x51 0 4M', 'write -P 0x52 6M 1M']);
  const bundle = join(dir, 'disk.sparsebundle');
  await emptyBundle(t, bundle, SIZE);
  t.is((await syncListingBands(t, parent, bundle)).mode, 'full');
  t.true((await bundleBytes(bundle)).equals(await chainBytes(t, parent, join(dir, 'parent.raw'))));

  const parentBytes = await readFile(parent);
  const linkage = `{${guidToText(VHDX_HEADER.decode(parentBytes, currentHeaderOffset(parentBytes)).dataWriteGuid)}}`;
  const blocks = new Map<number, BlockSpec>([
    [1, { state: PAYLOAD_BLOCK_FULLY_PRESENT, data: seededBytes(MIB, 21) }],
    [3, { state: PAYLOAD_BLOCK_ZERO }],
    [5, { state: PAYLOAD_BLOCK_PARTIALLY_PRESENT, data: seededBytes(MIB, 22), presentSectors: [0, 1, 2] }],
  ]);
  const child = join(dir, 'disk_snapshot.avhdx');
  await writeFile(
    child,
    buildVhdx({ virtualSize: SIZE, blockSize: MIB, blocks, parentLocator: { parent_linkage: linkage, relative_path: '.\\disk.vhdx' } }),
  );
  const delta = await syncListingBands(t, child, bundle);
  t.is(delta.mode, 'delta', delta.fullReason);
  t.true(delta.bytesCompared >= 2 * MIB && delta.bytesCompared < 3 * MIB, `compared ${delta.bytesCompared} bytes: the new layer's`);
  t.true((await bundleBytes(bundle)).equals(await chainBytes(t, child, join(dir, 'chain.raw'))));
  t.deepEqual(delta.bands, [1, 3, 5], 'changed-bands lists exactly the bands the snapshot changed');
  const none = await syncListingBands(t, child, bundle);
  t.is(none.mode, 'delta');
  t.is(none.bytesCompared, 0);
  t.deepEqual(none.bands, []);
});

test('a Virtual PC snapshot: the differencing VHD adds a layer, and the sync after it compares only its blocks', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const parent = join(dir, 'parent.vhd');
  await qemuVhd(parent, '8M', ['subformat=dynamic'], ['write -P 0x61 0 5M']);
  const bundle = join(dir, 'disk.sparsebundle');
  const size = (await chainBytes(t, parent, join(dir, 'parent.raw'))).length; // VHD sizes round to CHS geometry
  await emptyBundle(t, bundle, size);
  t.is((await syncListingBands(t, parent, bundle)).mode, 'full');
  const child = join(dir, 'child.vhd');
  await qemuVhd(child, '8M', ['subformat=dynamic'], ['write -P 0xab 2M 4k']);
  await makeDifferencing(child, parent, { w2ru: '.\\parent.vhd' });
  const delta = await syncListingBands(t, child, bundle);
  t.is(delta.mode, 'delta', delta.fullReason);
  t.true(delta.bytesCompared > 0 && delta.bytesCompared <= 2 * MIB, `compared ${delta.bytesCompared} bytes: one VHD block at most`);
  const expected = await chainBytes(t, child, join(dir, 'chain.raw'));
  t.is(expected.readUInt8(2 * MIB), 0xab);
  t.true((await bundleBytes(bundle)).equals(expected));
  t.true(delta.bands.includes(2), 'the band of the write is listed');
  t.true(delta.bands.length <= 2, `one VHD block spans at most two 1 MiB bands: ${delta.bands}`);
});
