// Differencing VHDX, hand-built (qemu cannot write one) over a parent qemu-img made: every
// payload block state reads per [MS-VHDX] (FULLY_PRESENT here, PARTIALLY_PRESENT sector by sector
// through the sector bitmap, NOT_PRESENT from the parent, ZERO/UNMAPPED/UNDEFINED as zeros), with
// 512-byte and 4 KiB logical sectors; the parent is found through the locator's paths in order,
// inside the disk's folder only, and a stale parent_linkage is a warning.

import test from 'ava';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_UNDEFINED,
  PAYLOAD_BLOCK_UNMAPPED,
  PAYLOAD_BLOCK_ZERO,
} from '../../../formats/vhdx/constants.js';
import { guidToText } from '../../../formats/vhdx/guid.js';
import { VHDX_HEADER } from '../../../formats/vhdx/layouts.js';
import { openVhdx } from '../../../formats/vhdx/open-vhdx.js';
import { SbmError } from '../../../lib/errors.js';
import { WarningList } from '../../../lib/warnings.js';
import { requireTool, runSbm, seededBytes, tempDir } from '../../helpers/tools.js';
import { type BlockSpec, MiB, buildVhdx, currentHeaderOffset, qemuImg, qemuVhdx } from './vhdx-kit.js';

const SIZE = 8 * MiB;

interface Chain {
  readonly dir: string;
  readonly parent: string;
  readonly parentRaw: Buffer;
  readonly linkage: string;
}

/** An 8 MiB qemu-made parent whose every MiB holds its own pattern. */
async function makeParent(dir: string, name = 'parent.vhdx'): Promise<Chain> {
  const parent = join(dir, name);
  const writes = Array.from({ length: 8 }, (_, index) => `write -P 0x${(0x50 + index).toString(16)} ${index}M 1M`);
  await qemuVhdx(parent, '8M', ['block_size=1M'], writes);
  const rawPath = join(dir, `${name}.raw`);
  await qemuImg(['convert', '-f', 'vhdx', '-O', 'raw', parent, rawPath]);
  const bytes = await readFile(parent);
  const linkage = `{${guidToText(VHDX_HEADER.decode(bytes, currentHeaderOffset(bytes)).dataWriteGuid)}}`;
  return { dir, parent, parentRaw: await readFile(rawPath), linkage };
}

/** The child's blocks and the bytes the chain must read, for a logical sector size. */
function childBlocks(parentRaw: Buffer, sector: number): { blocks: Map<number, BlockSpec>; expected: Buffer } {
  const expected = Buffer.from(parentRaw);
  const blocks = new Map<number, BlockSpec>();
  const full = seededBytes(MiB, 11);
  blocks.set(0, { state: PAYLOAD_BLOCK_FULLY_PRESENT, data: full });
  full.copy(expected, 0);
  const partial = seededBytes(MiB, 12);
  const present = [0, 1, 2, 100, MiB / sector - 1];
  blocks.set(1, { state: PAYLOAD_BLOCK_PARTIALLY_PRESENT, data: partial, presentSectors: present });
  for (const index of present) partial.copy(expected, MiB + index * sector, index * sector, (index + 1) * sector);
  blocks.set(2, { state: PAYLOAD_BLOCK_NOT_PRESENT });
  for (const [block, state] of [
    [3, PAYLOAD_BLOCK_ZERO],
    [4, PAYLOAD_BLOCK_UNMAPPED],
    [5, PAYLOAD_BLOCK_UNDEFINED],
  ] as const) {
    blocks.set(block, { state });
    expected.fill(0, block * MiB, (block + 1) * MiB);
  }
  // Partially present with no sector here: all of it from the parent. Block 7 is left NOT_PRESENT.
  blocks.set(6, { state: PAYLOAD_BLOCK_PARTIALLY_PRESENT, data: seededBytes(MiB, 13), presentSectors: [] });
  return { blocks, expected };
}

async function writeChild(
  path: string,
  chain: Chain,
  paths: Record<string, string>,
  sector = 512,
  linkage = chain.linkage,
): Promise<Buffer> {
  const { blocks, expected } = childBlocks(chain.parentRaw, sector);
  await writeFile(
    path,
    buildVhdx({
      virtualSize: SIZE,
      blockSize: MiB,
      logicalSectorSize: sector,
      blocks,
      parentLocator: { parent_linkage: linkage, ...paths },
    }),
  );
  return expected;
}

for (const sector of [512, 4096]) {
  test(`differencing VHDX with ${sector}-byte logical sectors reads every block state per the spec`, async (t) => {
    await requireTool(t, 'qemu-img');
    const dir = await tempDir(t);
    const chain = await makeParent(dir);
    const child = join(dir, 'child.vhdx');
    const expected = await writeChild(
      child,
      chain,
      { relative_path: '.\\parent.vhdx', absolute_win32_path: 'C:\\VMs\\parent.vhdx' },
      sector,
    );
    const warnings = new WarningList();
    const image = await openVhdx(child, { onWarning: warnings.sink });
    try {
      t.is(image.sizeBytes, SIZE);
      t.true((await image.read(0, SIZE)).equals(expected), 'whole disk');
      // Reads that start and end inside sectors, across a present/absent edge of block 1.
      t.true((await image.read(MiB + 3 * sector - 7, 20)).equals(expected.subarray(MiB + 3 * sector - 7, MiB + 3 * sector + 13)));
      const extents = await image.extents(0, SIZE);
      const kindAt = (offset: number): string | undefined =>
        extents.find((extent) => extent.offset <= offset && offset < extent.offset + extent.length)?.kind;
      t.is(kindAt(0), 'data');
      t.is(kindAt(2 * MiB), 'data', 'NOT_PRESENT: the parent holds data');
      t.is(kindAt(3 * MiB), 'zero');
      t.is(kindAt(5 * MiB + 4096), 'zero');
      t.is(
        extents.reduce((sum, extent) => sum + extent.length, 0),
        SIZE,
      );
      const details = await image.details();
      t.is(details.subformat, 'differencing');
      t.is(details.logicalSectorSize, sector);
      t.is((details.chain as unknown[]).length, 2);
      t.deepEqual(warnings.items, []);
    } finally {
      await image.close();
    }
    // The CLI path: convert to a bundle and export to raw equals the same bytes.
    const bundle = join(dir, 'child.sparsebundle');
    const convert = await runSbm(['convert', child, bundle, '--no-progress']);
    t.is(convert.exitCode, 0, convert.stderr);
    const back = join(dir, 'back.raw');
    t.is((await runSbm(['export', bundle, back, '--format', 'raw'])).exitCode, 0);
    t.true((await readFile(back)).equals(expected), 'sbm convert + export');
  });
}

test('a qemu-made VHDX patched to 4 KiB logical sectors reads the same bytes (chunk ratio 32768)', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const chain = await makeParent(dir);
  const bytes = await readFile(chain.parent);
  // The logical sector size item: find its value through the metadata table (items carry no CRC).
  const { LOGICAL_SECTOR_SIZE_GUID } = await import('../../../formats/vhdx/constants.js');
  const { guidToBytes } = await import('../../../formats/vhdx/guid.js');
  const { METADATA_TABLE_ENTRY, METADATA_TABLE_HEADER, REGION_TABLE_ENTRY } = await import('../../../formats/vhdx/layouts.js');
  const metadataEntry = REGION_TABLE_ENTRY.decode(bytes, 192 * 1024 + 16 + 32);
  const regionAt = Number(metadataEntry.fileOffset);
  const count = METADATA_TABLE_HEADER.decode(bytes, regionAt).entryCount;
  const wanted = guidToBytes(LOGICAL_SECTOR_SIZE_GUID);
  let patched = false;
  for (let index = 0; index < count; index++) {
    const entry = METADATA_TABLE_ENTRY.decode(bytes, regionAt + 32 + index * 32);
    if (!entry.itemId.equals(wanted)) continue;
    bytes.writeUInt32LE(4096, regionAt + entry.offset);
    patched = true;
  }
  t.true(patched);
  const disk = join(dir, 'sector4k.vhdx');
  await writeFile(disk, bytes);
  const image = await openVhdx(disk);
  try {
    t.true((await image.read(0, SIZE)).equals(chain.parentRaw));
    const details = await image.details();
    t.is(details.logicalSectorSize, 4096);
    t.is(details.chunkRatio, 32768);
  } finally {
    await image.close();
  }
});

test('parent_linkage that differs from the parent DataWriteGuid is a warning; --strict refuses', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const chain = await makeParent(dir);
  const child = join(dir, 'child.vhdx');
  const expected = await writeChild(child, chain, { relative_path: 'parent.vhdx' }, 512, '{01234567-89AB-CDEF-0123-456789ABCDEF}');
  const warnings = new WarningList();
  const image = await openVhdx(child, { onWarning: warnings.sink });
  try {
    t.deepEqual(
      warnings.items.map((warning) => warning.code),
      ['SBM_VHDX_PARENT_MISMATCH'],
    );
    t.true((await image.read(0, SIZE)).equals(expected), 'still read through the parent');
  } finally {
    await image.close();
  }
  const strict = await runSbm(['info', child, '--strict']);
  t.is(strict.exitCode, 4);
  t.regex(
    strict.stderr,
    /^sbm: SBM_STRICT: SBM_VHDX_PARENT_MISMATCH: .*child\.vhdx: parent_linkage \{01234567-89AB-CDEF-0123-456789ABCDEF\} does not match/,
  );
  t.is(strict.stderr.split('\n').length, 2, 'one line');
});

test('the parent is looked up by relative_path, then volume_path / absolute_win32_path by file name beside the disk', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const chain = await makeParent(dir, 'base.vhdx');
  const child = join(dir, 'child.vhdx');
  // relative_path names a file that is gone; the Windows absolute path's file name is beside the child.
  const expected = await writeChild(child, chain, {
    relative_path: '.\\moved-away.vhdx',
    volume_path: '\\\\?\\Volume{26A21BDA-A627-11D7-9931-806E6F6E6963}\\VMs\\base.vhdx',
  });
  const image = await openVhdx(child);
  try {
    t.true((await image.read(0, SIZE)).equals(expected));
  } finally {
    await image.close();
  }
  const missing = join(dir, 'orphan.vhdx');
  await writeChild(missing, chain, { relative_path: 'nowhere.vhdx', absolute_win32_path: 'D:\\nowhere-else.vhdx' });
  const error = await t.throwsAsync(openVhdx(missing), { instanceOf: SbmError });
  t.is(error?.code, 'SBM_NOT_FOUND');
  t.regex(
    error?.message ?? '',
    /orphan\.vhdx: VHDX parent not found \(tried relative_path=nowhere\.vhdx, absolute_win32_path=D:\\nowhere-else\.vhdx\)$/,
  );
});

test('a parent outside the disk folder is refused unless allowOutside', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const chain = await makeParent(dir);
  await mkdir(join(dir, 'children'));
  const child = join(dir, 'children', 'child.vhdx');
  const expected = await writeChild(child, chain, { relative_path: '..\\parent.vhdx' });
  const refused = await runSbm(['info', child]);
  t.is(refused.exitCode, 4);
  t.is(
    refused.stderr,
    `sbm: SBM_PATH_OUTSIDE: ${child}: VHDX parent "..\\parent.vhdx" (relative_path) ` +
      "lies outside the disk's folder (use --allow-outside to permit)\n",
  );
  const image = await openVhdx(child, { allowOutside: true });
  try {
    t.true((await image.read(0, SIZE)).equals(expected));
  } finally {
    await image.close();
  }
  const allowed = await runSbm(['info', child, '--allow-outside', '--json']);
  t.is(allowed.exitCode, 0, allowed.stderr);
});

test('a parent chain that loops is refused with one line', async (t) => {
  const dir = await tempDir(t);
  const linkage = '{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}';
  const self = join(dir, 'self.vhdx');
  await writeFile(
    self,
    buildVhdx({ virtualSize: SIZE, blockSize: MiB, parentLocator: { parent_linkage: linkage, relative_path: 'self.vhdx' } }),
  );
  const selfError = await t.throwsAsync(openVhdx(self), { instanceOf: SbmError });
  t.is(selfError?.code, 'SBM_CORRUPT');
  t.regex(selfError?.message ?? '', /loops back/);
  await writeFile(
    join(dir, 'a.vhdx'),
    buildVhdx({ virtualSize: SIZE, blockSize: MiB, parentLocator: { parent_linkage: linkage, relative_path: 'b.vhdx' } }),
  );
  await writeFile(
    join(dir, 'b.vhdx'),
    buildVhdx({ virtualSize: SIZE, blockSize: MiB, parentLocator: { parent_linkage: linkage, relative_path: 'a.vhdx' } }),
  );
  const result = await runSbm(['convert', join(dir, 'a.vhdx'), join(dir, 'out.sparsebundle'), '--no-progress']);
  t.is(result.exitCode, 4);
  t.regex(result.stderr, /^sbm: SBM_CORRUPT: .*b\.vhdx: VHDX parent chain loops back to .*a\.vhdx\n$/);
});

test('a parent in another format (raw) is read through the registry', async (t) => {
  const dir = await tempDir(t);
  const parentRaw = seededBytes(SIZE, 21);
  await writeFile(join(dir, 'base.img'), parentRaw);
  const child = join(dir, 'child.vhdx');
  const expected = await writeChild(
    child,
    { dir, parent: join(dir, 'base.img'), parentRaw, linkage: '{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}' },
    { relative_path: 'base.img' },
  );
  const image = await openVhdx(child);
  try {
    t.true((await image.read(0, SIZE)).equals(expected));
    t.deepEqual((await image.details()).chain, [
      { file: child, format: 'vhdx', subformat: 'differencing', virtualSize: SIZE },
      { file: join(dir, 'base.img'), format: 'raw', virtualSize: SIZE },
    ]);
  } finally {
    await image.close();
  }
});

test('a loop through another format (VHDX -> qcow2 -> the same VHDX) is refused, not followed', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const child = join(dir, 'child.vhdx');
  await writeFile(
    child,
    buildVhdx({
      virtualSize: SIZE,
      blockSize: MiB,
      parentLocator: { parent_linkage: '{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}', relative_path: 'middle.qcow2' },
    }),
  );
  await qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'child.vhdx', '-F', 'vhdx', join(dir, 'middle.qcow2'), '8M']);
  const error = await t.throwsAsync(openVhdx(child), { instanceOf: SbmError });
  t.is(error?.code, 'SBM_CORRUPT', error?.message);
  t.regex(error?.message ?? '', /loops back/);
});
