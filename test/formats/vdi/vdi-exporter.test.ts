// Export to VDI against real qemu-img: `qemu-img check` (qemu's vdi driver implements check)
// reports no errors, `qemu-img compare` says identical to the source, `qemu-img info` gives the
// virtual size and `qemu-img map` shows exactly the blocks holding non-zero bytes as data, at the
// offsets the block map gives, numbered in disk order. sbm's own reader reads it back equal.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { RawImage } from '../../../formats/raw/raw-image.js';
import { VDI_IMAGE_BLOCK_FREE, VDI_PRE_HEADER_SIZE } from '../../../formats/vdi/constants.js';
import { VDI_HEADER_LCHS, VDI_HEADER_V1, VDI_PRE_HEADER } from '../../../formats/vdi/layouts.js';
import { vdiExporter } from '../../../formats/vdi/vdi-exporter.js';
import { isSbmError } from '../../../lib/errors.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { requireTool, tempDir } from '../../helpers/tools.js';
import {
  GiB,
  MiB,
  type SourceCase,
  allocatedFileBytes,
  assertQemuCheck,
  assertQemuCompare,
  assertSbmReadsSame,
  blocksWithData,
  makeSource,
  qemuInfo,
} from '../export-kit.js';

const CASES: readonly SourceCase[] = [
  {
    title: 'holes, written zeros, a run across a block boundary, data at the end of a short last block',
    sizeBytes: 70 * MiB + 3 * 512,
    runs: [
      { offset: 0, length: 100 * 1024, seed: 1 },
      { offset: 5 * MiB - 4096, length: 8192, seed: 2 },
      { offset: 10 * MiB, length: 3 * MiB, seed: 0 },
      { offset: 20 * MiB + 512, length: 512, seed: 3 },
      { offset: 70 * MiB + 3 * 512 - 1536, length: 1536, seed: 4 },
    ],
  },
  { title: 'a disk smaller than one block', sizeBytes: 300 * 1024, runs: [{ offset: 4096, length: 4096, seed: 5 }] },
  { title: 'a size that is not a multiple of 512', sizeBytes: 3 * MiB + 1000, runs: [{ offset: 3 * MiB, length: 1000, seed: 6 }] },
  { title: 'every block full', sizeBytes: 4 * MiB, runs: [{ offset: 0, length: 4 * MiB, seed: 7 }] },
  { title: 'nothing but holes', sizeBytes: 16 * MiB, runs: [] },
  {
    title: 'a 2 GiB sparse disk with little data',
    sizeBytes: 2 * GiB,
    runs: [
      { offset: 0, length: 64 * 1024, seed: 8 },
      { offset: 512 * MiB, length: 8 * MiB, seed: 0 },
      { offset: GiB + MiB - 100, length: 200, seed: 9 },
      { offset: 2 * GiB - 4096, length: 4096, seed: 10 },
    ],
  },
  {
    // qemu's vdi driver reports block status, so qemu-img compare skips the holes (a few seconds).
    title: 'a 2 TiB sparse disk: a block map of 2 Mi entries written page by page',
    sizeBytes: 2 * 1024 * GiB,
    runs: [
      { offset: 0, length: 4096, seed: 11 },
      { offset: 1024 * GiB - 512, length: 1024, seed: 12 },
      { offset: 2 * 1024 * GiB - 4096, length: 4096, seed: 13 },
    ],
  },
];

interface QemuMapEntry {
  readonly start: number;
  readonly length: number;
  readonly data: boolean;
  readonly offset?: number;
}

/** Block index -> file offset of every 1 MiB block qemu-img map reports as data. */
async function qemuDataBlocks(path: string): Promise<Map<number, number>> {
  const map = JSON.parse((await execa('qemu-img', ['map', '--output=json', '-f', 'vdi', path])).stdout) as QemuMapEntry[];
  const blocks = new Map<number, number>();
  for (const entry of map.filter((candidate) => candidate.data)) {
    for (let at = entry.start; at < entry.start + entry.length; at += MiB) blocks.set(at / MiB, (entry.offset ?? -1) + (at - entry.start));
  }
  return blocks;
}

async function exportCase(t: ExecutionContext, source: SourceCase): Promise<void> {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const rawPath = join(dir, 'source.raw');
  await makeSource(rawPath, source);
  const out = join(dir, 'out.vdi');
  const raw = await RawImage.open(rawPath);
  const progress: number[] = [];
  try {
    await vdiExporter.export(raw, out, { copy: { onProgress: (p) => progress.push(p.bytesDone) } });
  } finally {
    await raw.close();
  }
  t.is(progress[progress.length - 1], source.sizeBytes, 'progress reaches the end');

  await assertQemuCheck(t, out, 'vdi');
  await assertQemuCompare(t, rawPath, out, 'vdi');
  const sizeBytes = Math.ceil(source.sizeBytes / 512) * 512;
  t.like(await qemuInfo(out), { format: 'vdi', 'virtual-size': sizeBytes });
  await assertSbmReadsSame(t, rawPath, out, 'vdi');

  const expected = blocksWithData(source, MiB);
  const file = await readFile(out);
  t.is(VDI_PRE_HEADER.decode(file).version, 0x00010001);
  const header = VDI_HEADER_V1.decode(file, VDI_PRE_HEADER_SIZE);
  t.like(header, { cbHeader: 400, imageType: 1, cbBlock: MiB, cbBlockExtra: 0, offBlocks: MiB, cbSector: 512 });
  t.is(header.cbDisk, BigInt(sizeBytes));
  t.is(header.cBlocks, Math.ceil(sizeBytes / MiB));
  t.is(header.cBlocksAllocated, expected.length, 'only blocks with non-zero bytes are allocated');
  t.is(header.offData % MiB, 0, 'data 1 MiB-aligned, as VirtualBox lays it out');
  t.false(
    header.uuidCreate.every((byte) => byte === 0),
    'VirtualBox refuses a zero creation UUID',
  );
  t.false(header.uuidModify.every((byte) => byte === 0));
  t.true(header.uuidLinkage.every((byte) => byte === 0) && header.uuidParentModify.every((byte) => byte === 0));
  t.like(VDI_HEADER_LCHS.decode(file, VDI_PRE_HEADER_SIZE + 384), { cbSector: 512 });
  for (let block = 0; block < header.cBlocks; block++) {
    const entry = file.readUInt32LE(header.offBlocks + block * 4);
    const index = expected.indexOf(block);
    if (entry !== (index < 0 ? VDI_IMAGE_BLOCK_FREE : index)) {
      t.fail(`block ${block}: map entry ${entry}, expected ${index < 0 ? 'free' : index}`);
      return;
    }
  }
  t.is((await stat(out)).size, header.offData + expected.length * MiB, 'every allocated block is whole in the file');
  const qemuBlocks = await qemuDataBlocks(out);
  t.deepEqual([...qemuBlocks.keys()], expected, 'qemu-img map: data exactly in the blocks with non-zero bytes');
  t.deepEqual(
    [...qemuBlocks.values()],
    expected.map((_, index) => header.offData + index * MiB),
  );
  t.true((await allocatedFileBytes(out)) <= header.offData + expected.length * MiB, 'holes of the source take no space in the file');
}

for (const source of CASES) test(`VDI export: ${source.title}`, (t) => exportCase(t, source));

test('VDI export refuses an existing output, a subformat other than dynamic, and a disk past 16 TiB', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'x.vdi');
  await vdiExporter.export(new MemoryDevice(MiB), out, {});
  t.true(isSbmError(await t.throwsAsync(vdiExporter.export(new MemoryDevice(MiB), out, {})), 'SBM_EXISTS'));
  const fixed = await t.throwsAsync(vdiExporter.export(new MemoryDevice(MiB), join(dir, 'y.vdi'), { subformat: 'fixed' }));
  t.true(isSbmError(fixed, 'SBM_USAGE'));
  const huge = { sizeBytes: 16 * 1024 * GiB + MiB } as MemoryDevice;
  t.true(isSbmError(await t.throwsAsync(vdiExporter.export(huge, join(dir, 'z.vdi'), {})), 'SBM_BAD_SIZE'));
  await t.throwsAsync(stat(join(dir, 'z.vdi')), { code: 'ENOENT' }, 'nothing written for a refused size');
});
