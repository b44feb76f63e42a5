// ESXi vmfsSparse (COWD) redo logs, hand-built (no Linux tool writes them) over a flat base, read
// back and compared with qemu-img, which also reads COWD.

import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { COWD_EXTENT_HEADER } from '../../../formats/vmdk/cowd-header.js';
import { COWD_MAGICNUMBER } from '../../../formats/vmdk/constants.js';
import { openVmdk } from '../../../formats/vmdk/open-vmdk.js';
import { requireTool, seededBytes, tempDir } from '../../helpers/tools.js';
import { MiB, compareAllBytes, kindAt, qemuImg } from './vmdk-test-kit.js';

const SECTORS = 8192; // 4 MiB
const GT_ENTRIES = 4096;

/** A COWD extent with 512-byte grains: GD at sector 4, two GTs, then grains. */
function cowd(grains: ReadonlyArray<{ lba: number; data?: Buffer; zeroed?: boolean }>): Buffer {
  const gdEntries = Math.ceil(SECTORS / GT_ENTRIES);
  const gdOffset = 4;
  const gtStart = gdOffset + 1;
  const gtSectors = (GT_ENTRIES * 4) / 512;
  let next = gtStart + gdEntries * gtSectors;
  const header = COWD_EXTENT_HEADER.encode({
    magicNumber: COWD_MAGICNUMBER,
    version: 1,
    flags: 3,
    numSectors: SECTORS,
    grainSize: 1,
    gdOffset,
    numGDEntries: gdEntries,
    freeSector: 0,
    generation: 0,
    savedGeneration: 0,
    uncleanShutdown: 0,
  });
  const tables = Buffer.alloc(gdEntries * gtSectors * 512);
  const gd = Buffer.alloc(512);
  for (let index = 0; index < gdEntries; index++) gd.writeUInt32LE(gtStart + index * gtSectors, index * 4);
  const data: Buffer[] = [];
  for (const grain of grains) {
    const slot = grain.lba * 4;
    if (grain.zeroed === true) tables.writeUInt32LE(1, slot);
    else {
      tables.writeUInt32LE(next, slot);
      data.push(grain.data ?? Buffer.alloc(512));
      next++;
    }
  }
  return Buffer.concat([header, gd, tables, ...data]);
}

test('a vmfsSparse child over a flat base reads like qemu-img', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  await writeFile(join(dir, 'base-flat.vmdk'), seededBytes(4 * MiB, 71));
  await writeFile(
    join(dir, 'base.vmdk'),
    '# Disk DescriptorFile\nversion=1\nCID=0000aaaa\nparentCID=ffffffff\ncreateType="vmfs"\nRW 8192 VMFS "base-flat.vmdk"\n',
  );
  const grains = [
    { lba: 0, data: seededBytes(512, 1) },
    { lba: 1, data: seededBytes(512, 2) },
    { lba: 5000, data: seededBytes(512, 3) },
  ];
  await writeFile(join(dir, 'base-000001-delta.vmdk'), cowd(grains));
  const child = join(dir, 'base-000001.vmdk');
  await writeFile(
    child,
    '# Disk DescriptorFile\nversion=1\nCID=0000bbbb\nparentCID=0000aaaa\ncreateType="vmfsSparse"\n' +
      'parentFileNameHint="/vmfs/volumes/ds1/vm/base.vmdk"\nRW 8192 VMFSSPARSE "base-000001-delta.vmdk"\n',
  );
  // qemu cannot follow the foreign absolute hint (sbm falls back to the basename): give it a copy.
  const forQemu = join(dir, 'for-qemu.vmdk');
  await writeFile(
    forQemu,
    '# Disk DescriptorFile\nversion=1\nCID=0000bbbb\nparentCID=0000aaaa\ncreateType="vmfsSparse"\n' +
      'parentFileNameHint="base.vmdk"\nRW 8192 VMFSSPARSE "base-000001-delta.vmdk"\n',
  );
  const reference = join(dir, 'reference.raw');
  await qemuImg(['convert', '-f', 'vmdk', '-O', 'raw', forQemu, reference]);
  const image = await openVmdk(child);
  t.teardown(() => image.close());
  await compareAllBytes(t, image, reference);
  t.true((await image.read(0, 1024)).equals(Buffer.concat([seededBytes(512, 1), seededBytes(512, 2)])));
  t.true((await image.read(1024, 512)).equals(seededBytes(4 * MiB, 71).subarray(1024, 1536)), 'parent shows through');
  const details = await image.details();
  t.is((details.chain as unknown[]).length, 2);
  t.is((details.extents as Array<Record<string, unknown>>)[0]?.type, 'VMFSSPARSE');
});

test('a zeroed COWD grain reads as zeros over parent data', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'base-flat.vmdk'), Buffer.alloc(4 * MiB, 0x55));
  await writeFile(
    join(dir, 'base.vmdk'),
    '# Disk DescriptorFile\nversion=1\nCID=0000aaaa\nparentCID=ffffffff\ncreateType="vmfs"\nRW 8192 VMFS "base-flat.vmdk"\n',
  );
  await writeFile(join(dir, 'c-delta.vmdk'), cowd([{ lba: 10, zeroed: true }]));
  const child = join(dir, 'c.vmdk');
  await writeFile(
    child,
    '# Disk DescriptorFile\nversion=1\nCID=0000bbbb\nparentCID=0000aaaa\ncreateType="vmfsSparse"\n' +
      'parentFileNameHint="base.vmdk"\nRW 8192 VMFSSPARSE "c-delta.vmdk"\n',
  );
  const image = await openVmdk(child);
  t.teardown(() => image.close());
  t.true((await image.read(10 * 512, 512)).equals(Buffer.alloc(512)));
  t.is((await image.read(11 * 512, 1))[0], 0x55);
  t.is(await kindAt(image, 10 * 512), 'zero');
  t.is(await kindAt(image, 11 * 512), 'data');
});
