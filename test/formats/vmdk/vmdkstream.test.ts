// streamOptimized written by python3-vmdkstream (Debian's VMDKstream.py): the footer layout with
// grain markers, made by software nobody here wrote.

import test from 'ava';
import { execa } from 'execa';
import { access, open } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { requireTool, runSbm, seededBytes, tempDir } from '../../helpers/tools.js';

const VMDKSTREAM = '/usr/lib/python3/dist-packages/VMDKstream.py';
const MIB = 1024 * 1024;

test('a VMDKstream footer-layout VMDK reads back byte for byte, converts, and keeps its holes', async (t) => {
  await requireTool(t, 'qemu-img');
  // Debian's module lives with Debian's python3, which may not be the first python3 on PATH.
  await access(VMDKSTREAM).catch(() => t.fail(`${VMDKSTREAM} is missing: run scripts/install-test-tools.sh`));
  const dir = await tempDir(t);
  const raw = join(dir, 'disk.raw');
  const sizeBytes = 24 * MIB;
  const regions = [
    { offset: 0, length: MIB },
    { offset: 9 * MIB + 4096, length: 300_000 },
    { offset: sizeBytes - 65536, length: 65536 },
  ];
  const handle = await open(raw, 'w');
  await handle.truncate(sizeBytes);
  for (const [index, region] of regions.entries())
    await handle.write(seededBytes(region.length, index + 11), 0, region.length, region.offset);
  await handle.close();
  const vmdk = join(dir, 'disk.vmdk');
  await execa('/usr/bin/python3', [VMDKSTREAM, raw, vmdk]);

  const image = await openImage(vmdk);
  t.teardown(() => image.close());
  t.is(image.formatName, 'vmdk');
  t.is(image.sizeBytes, sizeBytes);
  const { readFile } = await import('node:fs/promises');
  t.true((await image.read(0, sizeBytes)).equals(await readFile(raw)));
  const holes = (await image.extents(0, sizeBytes)).filter((extent) => extent.kind === 'hole');
  t.true(
    holes.some((extent) => extent.offset <= 2 * MIB && extent.offset + extent.length >= 8 * MIB),
    'the 2-8 MiB gap is a hole',
  );
  t.like(await image.details(), { createType: 'streamOptimized' });

  const bundle = join(dir, 'disk.sparsebundle');
  t.is((await runSbm(['convert', vmdk, bundle])).exitCode, 0);
  const back = join(dir, 'back.raw');
  t.is((await runSbm(['export', bundle, back, '--format', 'raw'])).exitCode, 0);
  const compare = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', raw, back], { reject: false });
  t.is(compare.exitCode, 0, compare.stdout);
});
