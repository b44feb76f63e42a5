// `sbm sync` of a VirtualBox snapshot chain: differencing VDIs (hand-built by vdi-kit's makeDiff,
// as VirtualBox writes them: qemu can neither create nor open them) over a base made by qemu-img.
// Each snapshot adds a layer; the sync after it reads only the new layer's blocks. The expected
// disk is computed independently: the base from qemu-img convert, each child's blocks laid over.

import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, tempDir } from '../../helpers/tools.js';
import { makeDiff, qemuRaw, qemuVdi } from '../../formats/vdi/vdi-kit.js';
import { MIB, bundleBytes, emptyBundle, syncListingBands } from './sync-rig.js';

test('a VirtualBox snapshot chain: each differencing VDI adds a layer, and the sync after it reads only that layer', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const base = join(dir, 'disk.vdi');
  await qemuVdi(base, '8M', [], ['write -P 0x11 0 3M', 'write -P 0x12 6M 4k']);
  const expected = await qemuRaw(base, join(dir, 'base.raw'));
  const bundle = join(dir, 'disk.sparsebundle');
  await emptyBundle(t, bundle, 8 * MIB);
  const first = await syncListingBands(t, base, bundle);
  t.is(first.mode, 'full');
  t.true((await bundleBytes(bundle)).equals(expected));

  // Snapshot 1: the base is frozen; the VM writes block 1 and zeros block 2 in a differencing image.
  const snapshot1 = join(dir, '{snapshot-1}.vdi');
  await makeDiff(snapshot1, base, {
    blocks: new Map<number, Buffer | 'zero'>([
      [1, Buffer.alloc(MIB, 0xab)],
      [2, 'zero'],
    ]),
  });
  expected.fill(0xab, MIB, 2 * MIB);
  expected.fill(0, 2 * MIB, 3 * MIB);
  const second = await syncListingBands(t, snapshot1, bundle);
  t.is(second.mode, 'delta', second.fullReason);
  t.is(second.bytesCompared, 2 * MIB, "only the new layer's two blocks (one data, one zeroed) are compared");
  t.true((await bundleBytes(bundle)).equals(expected), 'the bundle equals the base with the snapshot laid over it');
  t.deepEqual(second.bands, [1, 2], 'changed-bands lists exactly the bands the snapshot changed');

  // Snapshot 2 over snapshot 1: a chain of three; again only the newest layer is read.
  const snapshot2 = join(dir, '{snapshot-2}.vdi');
  await makeDiff(snapshot2, snapshot1, { blocks: new Map<number, Buffer | 'zero'>([[7, Buffer.alloc(MIB, 0xcd)]]) });
  expected.fill(0xcd, 7 * MIB, 8 * MIB);
  const third = await syncListingBands(t, snapshot2, bundle);
  t.is(third.mode, 'delta', third.fullReason);
  t.is(third.bytesCompared, MIB, 'only the newest layer is compared, not snapshot 1 below it');
  t.true((await bundleBytes(bundle)).equals(expected));
  t.deepEqual(third.bands, [7]);

  // Nothing new: a delta of nothing, no band touched.
  const none = await syncListingBands(t, snapshot2, bundle);
  t.is(none.mode, 'delta');
  t.is(none.bytesRead, 0);
  t.deepEqual(none.bands, []);
  t.true((await readFile(join(dir, 'base.raw'))).subarray(0, MIB).equals((await bundleBytes(bundle)).subarray(0, MIB)));
});
