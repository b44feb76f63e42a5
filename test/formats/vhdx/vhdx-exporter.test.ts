// Export to VHDX against real qemu-img: `qemu-img check` (qemu's vhdx driver implements check:
// headers, region table, BAT entries against the file) reports no errors, `qemu-img compare` says
// identical to the source and `qemu-img info` gives the virtual size; libvhdi's vhdiinfo, a second
// parser, reads the headers and metadata; sbm's own reader reads it back equal. The structures are
// checked field by field: both headers with their CRC-32C and sequence numbers, an empty log, two
// equal region tables, and a BAT whose sector-bitmap entries sit after every 128 payload entries.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { RawImage } from '../../../formats/raw/raw-image.js';
import {
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  HEADER_SIZE,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_ZERO,
  REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET,
  REGION_TABLE_SIZE,
} from '../../../formats/vhdx/constants.js';
import { REGION_TABLE_ENTRY, REGION_TABLE_HEADER, VHDX_HEADER } from '../../../formats/vhdx/layouts.js';
import { vhdxExporter } from '../../../formats/vhdx/vhdx-exporter.js';
import { crc32c } from '../../../lib/checksums.js';
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
  assertQemuReadsRuns,
  assertSbmReadsSame,
  blocksWithData,
  makeSource,
  qemuInfo,
} from '../export-kit.js';

const BLOCK = 32 * MiB;
/** Payload blocks per sector bitmap: 2^23 sectors of 512 bytes / 32 MiB. */
const CHUNK_RATIO = 128;

const CASES: readonly SourceCase[] = [
  {
    title: 'holes, written zeros, a run across a block boundary, data at the end of a short last block',
    sizeBytes: 70 * MiB + 3 * 512,
    runs: [
      { offset: 0, length: 100 * 1024, seed: 11 },
      { offset: 32 * MiB - 4096, length: 8192, seed: 12 },
      { offset: 40 * MiB, length: 3 * MiB, seed: 0 },
      { offset: 70 * MiB + 3 * 512 - 1536, length: 1536, seed: 13 },
    ],
  },
  { title: 'a disk smaller than one block', sizeBytes: 3 * MiB, runs: [{ offset: 4096, length: 4096, seed: 14 }] },
  { title: 'a size that is not a multiple of 512', sizeBytes: 3 * MiB + 1000, runs: [{ offset: 3 * MiB, length: 1000, seed: 15 }] },
  { title: 'a block of written zeros only and nothing else', sizeBytes: 64 * MiB, runs: [{ offset: 32 * MiB, length: 32 * MiB, seed: 0 }] },
  {
    // The larger sparse disk. qemu 7.2's vhdx driver reports no block status, so qemu-img compare
    // reads all of it (about half a minute here); a smaller disk would have no sector-bitmap entry.
    title: 'a sparse disk past 4 GiB: data on both sides of the first sector-bitmap entry',
    sizeBytes: 4 * GiB + 100 * MiB + 3 * 512,
    runs: [
      { offset: 4096, length: 4096, seed: 19 },
      { offset: 4 * GiB - 2048, length: 4096, seed: 20 },
      { offset: 4 * GiB + 40 * MiB, length: MiB, seed: 0 },
      { offset: 4 * GiB + 100 * MiB + 3 * 512 - 512, length: 512, seed: 21 },
    ],
  },
  {
    title: 'a 2 TiB sparse disk: bounded work, a BAT of 65 536 payload entries written page by page',
    sizeBytes: 2 * 1024 * GiB,
    huge: true,
    runs: [
      { offset: 0, length: 4096, seed: 22 },
      { offset: 1024 * GiB - 512, length: 1024, seed: 23 },
      { offset: 2 * 1024 * GiB - 4096, length: 4096, seed: 24 },
    ],
  },
];

/** Low and high words of BAT entry `index` (state in bits 0-2, FileOffsetMB from bit 20). */
function batEntry(file: Buffer, batOffset: number, index: number): { state: number; fileOffset: number } {
  const low = file.readUInt32LE(batOffset + index * 8);
  const high = file.readUInt32LE(batOffset + index * 8 + 4);
  return { state: low & 7, fileOffset: ((low >>> 20) + high * 4096) * MiB };
}

function checkHeaderSection(t: ExecutionContext, file: Buffer): { batOffset: number; batLength: number } {
  t.is(file.subarray(0, 8).toString('latin1'), 'vhdxfile');
  const headers = [HEADER1_OFFSET, HEADER2_OFFSET].map((at) => {
    const copy = Buffer.from(file.subarray(at, at + HEADER_SIZE));
    copy.writeUInt32LE(0, 4);
    const header = VHDX_HEADER.decode(file, at);
    t.is(crc32c(copy), header.checksum, `header at ${at}: CRC-32C`);
    t.is(header.signature.toString('latin1'), 'head');
    t.like(header, { version: 1, logVersion: 0, logLength: MiB, logOffset: BigInt(MiB) });
    t.true(
      header.logGuid.every((byte) => byte === 0),
      'LogGuid zero: the log is empty',
    );
    return header;
  });
  t.deepEqual(
    headers.map((header) => header.sequenceNumber),
    [1n, 2n],
  );
  t.deepEqual(headers[0]?.dataWriteGuid, headers[1]?.dataWriteGuid);
  const table = file.subarray(REGION_TABLE1_OFFSET, REGION_TABLE1_OFFSET + REGION_TABLE_SIZE);
  t.true(table.equals(file.subarray(REGION_TABLE2_OFFSET, REGION_TABLE2_OFFSET + REGION_TABLE_SIZE)), 'both region tables equal');
  const tableCopy = Buffer.from(table);
  tableCopy.writeUInt32LE(0, 4);
  const head = REGION_TABLE_HEADER.decode(table);
  t.is(crc32c(tableCopy), head.checksum, 'region table CRC-32C');
  t.is(head.entryCount, 2);
  const bat = REGION_TABLE_ENTRY.decode(table, REGION_TABLE_HEADER.sizeBytes);
  t.is(bat.fileOffset, BigInt(2 * MiB), 'BAT right after the 1 MiB log');
  return { batOffset: Number(bat.fileOffset), batLength: bat.length };
}

async function exportCase(t: ExecutionContext, source: SourceCase): Promise<void> {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'vhdiinfo');
  const dir = await tempDir(t);
  const rawPath = join(dir, 'source.raw');
  await makeSource(rawPath, source);
  const out = join(dir, 'out.vhdx');
  const raw = await RawImage.open(rawPath);
  const progress: number[] = [];
  try {
    await vhdxExporter.export(raw, out, { copy: { onProgress: (p) => progress.push(p.bytesDone) } });
  } finally {
    await raw.close();
  }
  t.is(progress[progress.length - 1], source.sizeBytes, 'progress reaches the end');

  await assertQemuCheck(t, out, 'vhdx');
  if (source.huge === true) await assertQemuReadsRuns(t, rawPath, out, 'vhdx', source);
  else await assertQemuCompare(t, rawPath, out, 'vhdx');
  const sizeBytes = Math.ceil(source.sizeBytes / 512) * 512;
  t.like(await qemuInfo(out), { format: 'vhdx', 'virtual-size': sizeBytes });
  const vhdiinfo = (await execa('vhdiinfo', [out])).stdout;
  t.regex(vhdiinfo, /Disk type\s*: Dynamic/);
  t.regex(vhdiinfo, new RegExp(`Media size\\s*: .*\\(${sizeBytes} bytes\\)`));
  await assertSbmReadsSame(t, rawPath, out, 'vhdx');

  const file = await readFile(out);
  const { batOffset, batLength } = checkHeaderSection(t, file);
  const expected = blocksWithData(source, BLOCK);
  const payloadBlocks = Math.ceil(sizeBytes / BLOCK);
  const entries = payloadBlocks + Math.floor((payloadBlocks - 1) / CHUNK_RATIO);
  t.true(batLength >= entries * 8);
  const offsets: number[] = [];
  for (let index = 0; index < entries; index++) {
    const entry = batEntry(file, batOffset, index);
    if (index % (CHUNK_RATIO + 1) === CHUNK_RATIO) {
      t.deepEqual(entry, { state: 0, fileOffset: 0 }, `entry ${index}: sector bitmap not present`);
      continue;
    }
    const block = index - Math.floor(index / (CHUNK_RATIO + 1));
    if (expected.includes(block)) {
      t.is(entry.state, PAYLOAD_BLOCK_FULLY_PRESENT, `block ${block}: present`);
      offsets.push(entry.fileOffset);
    } else if (entry.state !== PAYLOAD_BLOCK_ZERO || entry.fileOffset !== 0) {
      t.fail(`block ${block} (entry ${index}): state ${entry.state} at ${entry.fileOffset}, expected ZERO at 0`);
    }
  }
  t.is(offsets.length, expected.length, 'only blocks with non-zero bytes are present');
  t.deepEqual(
    offsets,
    offsets.map((_, index) => (offsets[0] ?? 0) + index * BLOCK),
    'blocks back to back, in disk order',
  );
  t.true((offsets[0] ?? 5 * MiB) >= batOffset + batLength + MiB, 'blocks after the metadata region');
  t.is((await stat(out)).size, (offsets[0] ?? batOffset + batLength + MiB) + expected.length * BLOCK);
  t.true((await allocatedFileBytes(out)) <= 8 * MiB + expected.length * 2 * MiB, 'zeros inside a present block are holes of the file');

  const image = await openImage(out);
  try {
    const details = await image.details();
    t.deepEqual(details.blockStates, {
      ...(expected.length > 0 ? { fullyPresent: expected.length } : {}),
      ...(payloadBlocks > expected.length ? { zero: payloadBlocks - expected.length } : {}),
    });
  } finally {
    await image.close();
  }
}

for (const source of CASES) test(`VHDX export: ${source.title}`, (t) => exportCase(t, source));

test('VHDX export refuses an existing output, a subformat other than dynamic, and a disk past 64 TiB', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'x.vhdx');
  await vhdxExporter.export(new MemoryDevice(MiB), out, {});
  t.true(isSbmError(await t.throwsAsync(vhdxExporter.export(new MemoryDevice(MiB), out, {})), 'SBM_EXISTS'));
  const fixed = await t.throwsAsync(vhdxExporter.export(new MemoryDevice(MiB), join(dir, 'y.vhdx'), { subformat: 'fixed' }));
  t.true(isSbmError(fixed, 'SBM_USAGE'));
  const huge = { sizeBytes: 64 * 1024 * 1024 * MiB + 512 } as MemoryDevice;
  t.true(isSbmError(await t.throwsAsync(vhdxExporter.export(huge, join(dir, 'z.vhdx'), {})), 'SBM_BAD_SIZE'));
  await t.throwsAsync(stat(join(dir, 'z.vhdx')), { code: 'ENOENT' }, 'nothing written for a refused size');
});
