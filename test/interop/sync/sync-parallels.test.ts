// `sbm sync` of a Parallels disk folder: a snapshot adds a layer, and the next sync reads only
// its clusters; --at-snapshot reads the frozen base; an image marked in use (a running VM) is refused
// with SBM_LOCKED.

import test from 'ava';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { TOP, ZERO, chainSpec, qemuHds, writeDescriptor } from '../../formats/parallels/parallels-kit.js';
import { MIB, checkedSync, emptyBundle } from './sync-rig.js';

const BASE = '{0b5e0000-0000-4000-8000-000000000001}';
const SECTORS = 8192;

test('a Parallels snapshot adds a layer: the sync after it reads only that layer; an in-use image is refused', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const folder = join(dir, 'harddisk.hdd');
  await mkdir(folder);
  const baseFile = `harddisk.hdd.0.${BASE}.hds`;
  const topFile = `harddisk.hdd.0.${TOP}.hds`;
  await qemuHds(join(folder, baseFile), '4M', ['write -P 0x11 0 1M', 'write -P 0x12 3M 64k']);
  await writeDescriptor(folder, {
    diskSectors: SECTORS,
    storages: [{ start: 0, end: SECTORS, images: [{ guid: BASE, file: baseFile }] }],
    shots: [[BASE, ZERO]],
  });
  const bundle = join(dir, 'disk.sparsebundle');
  await emptyBundle(t, bundle, 4 * MIB);
  const first = await checkedSync(t, dir, folder, 'parallels', bundle, [], join(folder, baseFile));
  t.is(first.mode, 'full');

  // The snapshot: the base is frozen, the VM writes a new top layer.
  await qemuHds(join(folder, topFile), '4M', ['write -P 0xab 2M 4k']);
  await writeDescriptor(folder, {
    diskSectors: SECTORS,
    storages: [
      {
        start: 0,
        end: SECTORS,
        images: [
          { guid: BASE, file: baseFile },
          { guid: TOP, file: topFile },
        ],
      },
    ],
    shots: [
      [BASE, ZERO],
      [TOP, BASE],
    ],
  });
  const spec = chainSpec(join(folder, topFile), join(folder, baseFile));
  const delta = await checkedSync(t, dir, folder, 'parallels', bundle, [], spec);
  t.is(delta.mode, 'delta');
  t.is(delta.bytesCompared, 65536, 'one cluster of the new layer');
  t.is(delta.bandsWritten, 1);

  // A Parallels layer file opened alone has no parents: --at-snapshot must not sync the top one as the disk.
  const alone = await runSbm(['sync', folder, bundle, '--at-snapshot', topFile]);
  t.is(alone.exitCode, 4, alone.stderr);
  t.regex(alone.stderr, /^sbm: SBM_UNSUPPORTED: .* opened alone is not the chain below it/m);
  // The bottom layer alone is its whole chain: the bundle goes back to the disk as the snapshot froze it.
  const frozen = await checkedSync(t, dir, folder, 'parallels', bundle, ['--at-snapshot', baseFile], join(folder, baseFile));
  t.is(frozen.bandsWritten, 1, 'only the band the top layer changed goes back');

  const image = await readFile(join(folder, topFile));
  image.writeUInt32LE(0x746f6e59, 44); // in_use = "Ynot": Parallels has it open
  await writeFile(join(folder, topFile), image);
  const refused = await runSbm(['sync', folder, bundle]);
  t.is(refused.exitCode, 3);
  t.regex(refused.stderr, /^sbm: SBM_LOCKED: .*\.hds is open for writing by Parallels Desktop \(its header marks it in use\)/m);
});
