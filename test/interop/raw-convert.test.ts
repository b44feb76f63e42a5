// Round trip through software nobody here wrote: qemu-img judges the bytes and the holes.

import test from 'ava';
import { execa } from 'execa';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, runSbm, seededBytes, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

interface MapEntry {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
}

test('raw with random data and holes -> convert -> export: qemu-img compare identical, map shows the holes', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const source = join(dir, 'source.img');
  const sizeBytes = 40 * MIB + 512 * 3; // not a band multiple: the last band is short
  const regions = [
    { offset: 0, length: 1 * MIB },
    { offset: 8 * MIB - 7000, length: 14000 }, // across a band edge
    { offset: 20 * MIB + 123, length: 3 * MIB }, // unaligned
    { offset: sizeBytes - 1000, length: 1000 }, // the very end
  ];
  const handle = await open(source, 'w');
  await handle.truncate(sizeBytes);
  for (const [index, region] of regions.entries())
    await handle.write(seededBytes(region.length, index + 1), 0, region.length, region.offset);
  await handle.close();

  const bundle = join(dir, 'disk.sparsebundle');
  const converted = await runSbm(['convert', source, bundle, '--json']);
  t.is(converted.exitCode, 0, converted.stderr);
  const exported = join(dir, 'exported.img');
  const exportRun = await runSbm(['export', bundle, exported, '--format', 'raw']);
  t.is(exportRun.exitCode, 0, exportRun.stderr);

  const compare = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, exported], { reject: false });
  t.is(compare.exitCode, 0, compare.stdout + compare.stderr);
  t.regex(compare.stdout, /Images are identical/);

  const map = JSON.parse((await execa('qemu-img', ['map', '--output=json', '-f', 'raw', exported])).stdout) as MapEntry[];
  const dataBytes = map.filter((entry) => entry.data).reduce((sum, entry) => sum + entry.length, 0);
  const written = regions.reduce((sum, region) => sum + region.length, 0);
  t.true(dataBytes >= written, 'every written region is data');
  t.true(dataBytes < written + 6 * 64 * 1024, `only the written regions are allocated (${dataBytes} bytes of data)`);
  const hole = map.find((entry) => entry.start <= 10 * MIB && entry.start + entry.length >= 18 * MIB);
  t.truthy(hole, 'the 10-18 MiB gap is one unallocated run');
  t.false(hole?.data);
});
