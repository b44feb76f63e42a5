// Damaged and unsupported VHDX input is refused at open, before anything is written, with one
// line naming the file: broken headers and region tables, unknown required regions and metadata items, impossible metadata,
// bad BAT entries, overlaps and truncation. Tolerated damage (one header or one region table
// copy) still reads the right bytes, and a pending log is replayed in memory.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { readFile, readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  METADATA_IS_REQUIRED,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET,
} from '../../../formats/vhdx/constants.js';
import { VHDX_HEADER } from '../../../formats/vhdx/layouts.js';
import { openVhdx } from '../../../formats/vhdx/open-vhdx.js';
import { type SbmErrorCode, SbmError } from '../../../lib/errors.js';
import { WarningList } from '../../../lib/warnings.js';
import { requireTool, runSbm, seededBytes, tempDir } from '../../helpers/tools.js';
import {
  BUILT_LAYOUT,
  type VhdxSpec,
  MiB,
  buildVhdx,
  currentHeaderOffset,
  fixHeaderCrc,
  fixRegionTableCrcs,
  qemuImg,
  qemuVhdx,
} from './vhdx-kit.js';

const SIZE = 8 * MiB;

/** A qemu-made 8 MiB VHDX with 1 MiB blocks and data in two of them, and qemu's raw of it. */
async function sample(t: ExecutionContext): Promise<{ dir: string; disk: string; pristine: Buffer; reference: Buffer }> {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.vhdx');
  await qemuVhdx(disk, '8M', ['block_size=1M'], ['write -P 0x61 0 64k', 'write -P 0x62 5M 1M']);
  const reference = join(dir, 'reference.raw');
  await qemuImg(['convert', '-f', 'vhdx', '-O', 'raw', disk, reference]);
  return { dir, disk, pristine: await readFile(disk), reference: await readFile(reference) };
}

async function refused(t: ExecutionContext, path: string, code: SbmErrorCode, pattern: RegExp): Promise<void> {
  const error = await t.throwsAsync(openVhdx(path), { instanceOf: SbmError });
  t.is(error?.code, code, error?.message);
  t.regex(error?.message ?? '', pattern);
  t.false((error?.message ?? '').includes('\n'), 'one line');
  t.true((error?.message ?? '').startsWith(`${code}: ${path}: `), 'names the file');
}

async function readsLike(t: ExecutionContext, path: string, reference: Buffer, warnings = new WarningList()): Promise<void> {
  const image = await openVhdx(path, { onWarning: warnings.sink });
  try {
    t.true((await image.read(0, image.sizeBytes)).equals(reference));
  } finally {
    await image.close();
  }
}

test('a pending log is replayed in memory: sbm reads the file as qemu-img reads it once replayed, and never writes it', async (t) => {
  const { dir, disk, pristine, reference } = await sample(t);
  // qemu-io leaves its last log entry in the ring: point the current header's LogGuid at it, as a
  // crash between journal and BAT update would.
  const header = currentHeaderOffset(pristine);
  const logOffset = Number(VHDX_HEADER.decode(pristine, header).logOffset);
  t.is(pristine.toString('latin1', logOffset, logOffset + 4), 'loge');
  const dirty = Buffer.from(pristine);
  pristine.copy(dirty, header + 48, logOffset + 32, logOffset + 48);
  fixHeaderCrc(dirty, header);
  await writeFile(disk, dirty);
  // qemu-img replays the log into a copy (it refuses the file until then).
  const copy = join(dir, 'replayed-by-qemu.vhdx');
  await writeFile(copy, dirty);
  t.regex((await execa('qemu-img', ['info', copy], { reject: false })).stderr, /log that needs to be replayed/);
  const check = await execa('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', copy], { reject: false });
  t.is(check.exitCode, 0, check.stdout);
  const replayed = join(dir, 'replayed.raw');
  await qemuImg(['convert', '-f', 'vhdx', '-O', 'raw', copy, replayed]);
  const expected = await readFile(replayed);
  // The logged entry is an older BAT sector: replayed, the disk differs from the sample.
  t.false(expected.equals(reference), 'the replay changes what the disk holds');
  const warnings = new WarningList();
  await readsLike(t, disk, expected, warnings);
  t.deepEqual(warnings.items, []);
  const info = await runSbm(['info', disk, '--json']);
  t.regex((JSON.parse(info.stdout) as { logReplayed: string }).logReplayed, /^in memory, 1 entry \(head sequence \d+\)$/);
  t.true((await readFile(disk)).equals(dirty), 'the file is not written');
});

test('a LogGuid with no valid log entry reads the file as it stands, with SBM_VHDX_LOG_INVALID', async (t) => {
  const { disk, pristine, reference } = await sample(t);
  const dirty = Buffer.from(pristine);
  const header = currentHeaderOffset(dirty);
  dirty[header + 48] = 0x01;
  fixHeaderCrc(dirty, header);
  await writeFile(disk, dirty);
  const warnings = new WarningList();
  await readsLike(t, disk, reference, warnings);
  t.deepEqual(
    warnings.items.map((warning) => warning.code),
    ['SBM_VHDX_LOG_INVALID'],
  );
  t.regex(warnings.items[0]?.message ?? '', /LogGuid 00000001-0000-0000-0000-000000000000\) but the log holds no valid entry/);
});

test('a log of forged entry headers, each claiming the whole ring, is SBM_CORRUPT at once, not a long search', async (t) => {
  const { disk, pristine } = await sample(t);
  const dirty = Buffer.from(pristine);
  const header = currentHeaderOffset(dirty);
  const { logOffset, logLength } = VHDX_HEADER.decode(dirty, header);
  const guid = Buffer.alloc(16, 0x5a);
  guid.copy(dirty, header + 48);
  fixHeaderCrc(dirty, header);
  for (let at = Number(logOffset); at < Number(logOffset) + logLength; at += 4096) {
    dirty.write('loge', at, 'latin1');
    dirty.writeUInt32LE(logLength, at + 8); // entry length: the whole ring
    dirty.writeBigUInt64LE(1n, at + 16); // sequence number
    guid.copy(dirty, at + 32);
  }
  await writeFile(disk, dirty);
  await refused(t, disk, 'SBM_CORRUPT', /the VHDX log holds entry headers that overlap again and again/);
});

test('headers: the current one damaged falls back to the other; both damaged is SBM_CORRUPT', async (t) => {
  const { disk, pristine, reference } = await sample(t);
  const current = currentHeaderOffset(pristine);
  const oneBroken = Buffer.from(pristine);
  oneBroken.writeUInt8(0xff, current + 200);
  await writeFile(disk, oneBroken);
  await readsLike(t, disk, reference);
  const image = await openVhdx(disk);
  t.is((await image.details()).currentHeader, current === HEADER1_OFFSET ? 2 : 1);
  await image.close();
  const bothBroken = Buffer.from(oneBroken);
  bothBroken.write('HEAD', HEADER1_OFFSET === current ? HEADER2_OFFSET : HEADER1_OFFSET, 'latin1');
  await writeFile(disk, bothBroken);
  await refused(t, disk, 'SBM_CORRUPT', /no valid VHDX header/);
  // Equal sequence numbers with different contents cannot be ordered.
  const twins = Buffer.from(pristine);
  const other = current === HEADER1_OFFSET ? HEADER2_OFFSET : HEADER1_OFFSET;
  twins.writeBigUInt64LE(twins.readBigUInt64LE(current + 8), other + 8);
  twins.writeUInt8(twins.readUInt8(other + 20) ^ 0xff, other + 20);
  fixHeaderCrc(twins, other);
  await writeFile(disk, twins);
  await refused(t, disk, 'SBM_CORRUPT', /both VHDX headers carry sequence number \d+ but differ/);
});

test('region tables: table 1 damaged reads through table 2 with a warning; both damaged is SBM_CORRUPT', async (t) => {
  const { disk, pristine, reference } = await sample(t);
  const first = Buffer.from(pristine);
  first.writeUInt8(first.readUInt8(REGION_TABLE1_OFFSET + 40) ^ 0x01, REGION_TABLE1_OFFSET + 40);
  await writeFile(disk, first);
  const warnings = new WarningList();
  await readsLike(t, disk, reference, warnings);
  t.deepEqual(
    warnings.items.map((warning) => warning.code),
    ['SBM_VHDX_REGION_TABLE_COPY'],
  );
  first.writeUInt8(first.readUInt8(REGION_TABLE2_OFFSET + 40) ^ 0x01, REGION_TABLE2_OFFSET + 40);
  await writeFile(disk, first);
  await refused(t, disk, 'SBM_CORRUPT', /both VHDX region tables are damaged \(table 1: CRC-32C mismatch; table 2: CRC-32C mismatch\)/);
});

test('truncated files: a block past the end, and a file shorter than its header section', async (t) => {
  const { dir, disk } = await sample(t);
  const size = (await readFile(disk)).length;
  await truncate(disk, size - MiB / 2);
  await refused(t, disk, 'SBM_CORRUPT', /VHDX BAT entry \d+ \(block 5\) points to offset \d+, past the end of the file/);
  const result = await runSbm(['convert', disk, join(dir, 'out.sparsebundle'), '--no-progress']);
  t.is(result.exitCode, 4);
  t.is(result.stderr.split('\n').length, 2, 'one line');
  t.false((await readdir(dir)).includes('out.sparsebundle'));
  await truncate(disk, 300 * 1024);
  await refused(t, disk, 'SBM_CORRUPT', /307200 bytes is shorter than the 1 MiB VHDX header section: truncated/);
});

async function built(t: ExecutionContext, spec: Partial<VhdxSpec>, patch?: (file: Buffer) => void): Promise<string> {
  const dir = await tempDir(t);
  const path = join(dir, 'built.vhdx');
  const file = buildVhdx({ virtualSize: SIZE, blockSize: MiB, ...spec });
  patch?.(file);
  await writeFile(path, file);
  return path;
}

const UNKNOWN = '0F0E0D0C-0B0A-0908-0706-050403020100';
const blocks = (entries: Array<[number, number]>): Map<number, { state: number; data: Buffer }> =>
  new Map(entries.map(([block, state]) => [block, { state, data: seededBytes(MiB, block + 1) }]));
/** Metadata item k's data and table entry in a built file (file parameters, size, page 83, logical, physical). */
const itemData = (index: number): number => BUILT_LAYOUT.metadataOffset + 64 * 1024 + index * 4096;

test('the hand builder makes a dynamic disk sbm reads (the baseline of the cases below)', async (t) => {
  const path = await built(t, { blocks: blocks([[1, PAYLOAD_BLOCK_FULLY_PRESENT]]) });
  const expected = Buffer.alloc(SIZE);
  seededBytes(MiB, 2).copy(expected, MiB);
  await readsLike(t, path, expected);
});

test('unknown required regions and metadata items are SBM_UNSUPPORTED; optional ones are ignored', async (t) => {
  await refused(
    t,
    await built(t, { extraRegion: { guid: UNKNOWN, required: 1 } }),
    'SBM_UNSUPPORTED',
    /VHDX region 0F0E0D0C-0B0A-0908-0706-050403020100 is marked required/,
  );
  await readsLike(t, await built(t, { extraRegion: { guid: UNKNOWN, required: 0 } }), Buffer.alloc(SIZE));
  await refused(
    t,
    await built(t, { extraItem: { guid: UNKNOWN, flags: METADATA_IS_REQUIRED } }),
    'SBM_UNSUPPORTED',
    /metadata item 0F0E0D0C-.* is marked required/,
  );
  await readsLike(t, await built(t, { extraItem: { guid: UNKNOWN, flags: 0 } }), Buffer.alloc(SIZE));
});

test('impossible metadata values are SBM_CORRUPT', async (t) => {
  await refused(t, await built(t, { blockSize: 3 * MiB }), 'SBM_CORRUPT', /block size 3145728 is not a power of two/);
  await refused(
    t,
    await built(t, { blockSize: 512 * MiB }),
    'SBM_CORRUPT',
    /block size 536870912 is not a power of two from 1 MiB to 256 MiB/,
  );
  await refused(t, await built(t, {}, (file) => void file.writeUInt32LE(1024, itemData(3))), 'SBM_CORRUPT', /logical sector size is 1024/);
  await refused(t, await built(t, { virtualSize: 65 * 1024 * 1024 * MiB }), 'SBM_CORRUPT', /larger than 64 TiB/);
  await refused(
    t,
    await built(t, { virtualSize: SIZE + 512, logicalSectorSize: 4096 }),
    'SBM_CORRUPT',
    /not a multiple of the logical sector size 4096/,
  );
  // 64 TiB in 1 MiB blocks needs a 512 MiB BAT; the region is 1 MiB.
  await refused(
    t,
    await built(t, { virtualSize: 64 * 1024 * 1024 * MiB }),
    'SBM_CORRUPT',
    /BAT region of 1048576 bytes cannot hold the \d+ entries/,
  );
  // A metadata item that points past its region.
  await refused(
    t,
    await built(t, {}, (file) => void file.writeUInt32LE(MiB, BUILT_LAYOUT.metadataOffset + 32 + 16)),
    'SBM_CORRUPT',
    /item "file parameters" .* lies outside the metadata region/,
  );
  await refused(
    t,
    await built(t, {}, (file) => void file.write('METADATA', BUILT_LAYOUT.metadataOffset, 'latin1')),
    'SBM_CORRUPT',
    /signature is not "metadata"/,
  );
  // HasParent set in the file parameters, but no parent locator item.
  await refused(
    t,
    await built(t, {}, (file) => void file.writeUInt32LE(2, itemData(0) + 4)),
    'SBM_CORRUPT',
    /VHDX metadata has no "parent locator" item/,
  );
});

test(
  'bad BAT entries are SBM_CORRUPT: reserved state, reserved bits, ' + 'partial blocks without a parent, overlaps, metadata hits',
  async (t) => {
    const bat = BUILT_LAYOUT.batOffset;
    await refused(
      t,
      await built(t, {}, (file) => void file.writeUInt32LE(4, bat + 8)),
      'SBM_CORRUPT',
      /BAT entry 1 \(block 1\) has state 4, invalid here/,
    );
    await refused(
      t,
      await built(t, {}, (file) => void file.writeUInt32LE(0x100, bat)),
      'SBM_CORRUPT',
      /BAT entry 0 \(block 0\) has reserved bits set/,
    );
    await refused(
      t,
      await built(t, { blocks: blocks([[2, PAYLOAD_BLOCK_PARTIALLY_PRESENT]]) }),
      'SBM_CORRUPT',
      /BAT entry 2 \(block 2\) has state 7, invalid here/,
    );
    const twoAtOnce = (file: Buffer): void => void file.copy(file, bat + 3 * 8, bat + 2 * 8, bat + 3 * 8);
    await refused(
      t,
      await built(t, { blocks: blocks([[2, PAYLOAD_BLOCK_FULLY_PRESENT]]) }, twoAtOnce),
      'SBM_CORRUPT',
      /BAT entry 3 \(block 3\) at offset 4194304 overlaps/,
    );
    const intoMetadata = (file: Buffer): void => void file.writeUInt32LE((PAYLOAD_BLOCK_FULLY_PRESENT | (3 << 20)) >>> 0, bat);
    await refused(
      t,
      await built(t, { blocks: blocks([[4, PAYLOAD_BLOCK_FULLY_PRESENT]]) }, intoMetadata),
      'SBM_CORRUPT',
      /BAT entry 0 \(block 0\) at offset 3145728 overlaps the log, BAT, metadata/,
    );
    const intoHeader = (file: Buffer): void => void file.writeUInt32LE(PAYLOAD_BLOCK_FULLY_PRESENT, bat);
    await refused(
      t,
      await built(t, {}, intoHeader),
      'SBM_CORRUPT',
      /BAT entry 0 \(block 0\) points to offset 0, inside the header section/,
    );
    // A differencing disk whose partially present block has no sector bitmap (chunk 0's bitmap entry
    // is BAT entry 4096 with 1 MiB blocks): found at open, not at the first read of the block.
    const parentLocator = { parent_linkage: '{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}', relative_path: 'missing-parent.vhdx' };
    const noBitmap = (file: Buffer): void => void file.fill(0, bat + 4096 * 8, bat + 4097 * 8);
    await refused(
      t,
      await built(t, { parentLocator, blocks: blocks([[2, PAYLOAD_BLOCK_PARTIALLY_PRESENT]]) }, noBitmap),
      'SBM_CORRUPT',
      /sector bitmap entry 4096 is not present, but its chunk holds partially present blocks/,
    );
  },
);

test('regions that overlap, sit inside the header section or pass the end of the file are SBM_CORRUPT', async (t) => {
  // Region table entry 1 is the metadata region: its file offset is at +16 of the entry.
  const metadataOffsetAt = (table: number): number => table + 16 + 32 + 16;
  const moveMetadata =
    (to: bigint) =>
    (file: Buffer): void => {
      for (const table of [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET]) file.writeBigUInt64LE(to, metadataOffsetAt(table));
      fixRegionTableCrcs(file);
    };
  await refused(
    t,
    await built(t, {}, moveMetadata(BigInt(BUILT_LAYOUT.batOffset))),
    'SBM_CORRUPT',
    /the VHDX BAT, metadata and log regions overlap/,
  );
  await refused(
    t,
    await built(t, {}, moveMetadata(BigInt(BUILT_LAYOUT.logOffset))),
    'SBM_CORRUPT',
    /the VHDX BAT, metadata and log regions overlap/,
  );
  await refused(
    t,
    await built(t, {}, moveMetadata(0n)),
    'SBM_CORRUPT',
    /metadata region \(offset 0, length 1048576\) is not 1 MiB-aligned past the header section/,
  );
  await refused(
    t,
    await built(t, {}, moveMetadata(BigInt(64 * MiB))),
    'SBM_CORRUPT',
    /metadata region \(offset 67108864, length 1048576\) lies past the end of the file/,
  );
  // The log placed past the end of the file, in the current header (CRC fixed).
  const logPastEnd = (file: Buffer): void => {
    file.writeBigUInt64LE(BigInt(64 * MiB), HEADER1_OFFSET + 72);
    fixHeaderCrc(file, HEADER1_OFFSET);
  };
  await refused(
    t,
    await built(t, {}, logPastEnd),
    'SBM_CORRUPT',
    /VHDX log \(offset 67108864, length 1048576\) is not 1 MiB-aligned inside the file/,
  );
});
