// copyVmdkStream: a streamOptimized VMDK read front to back from a byte stream, in both layouts
// (qemu-img's tables in front, VMware's footer and end-of-stream marker as sbm's exporter writes
// them), checked against qemu-img's own reading; and hostile streams: out of order, cut short,
// grains outside the disk, random damage (one SbmError, never a hang or a stack trace).

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { execa } from 'execa';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSbmError } from '../../../lib/errors.js';
import { writeStreamOptimized } from '../../../formats/vmdk/stream-writer.js';
import { copyVmdkStream } from '../../../formats/vmdk/stream-copy.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { requireTool, seededBytes, tempDir } from '../../helpers/tools.js';

const MiB = 1024 * 1024;
const SIZE = 4 * MiB;

/** 4 MiB: data at 0 and 2.5 MiB, a zero-written region and holes in between. */
function diskBytes(): Buffer {
  const raw = Buffer.alloc(SIZE);
  seededBytes(300 * 1024, 3).copy(raw, 0);
  seededBytes(64 * 1024, 4).copy(raw, 2.5 * MiB);
  return raw;
}

/** The stream as chunks of odd sizes, as a decompressor hands them out. */
async function* chunked(data: Buffer, size = 7777): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

async function copy(stream: Buffer, limitBytes = 64 * MiB): Promise<MemoryDevice> {
  const target = new MemoryDevice(SIZE);
  await copyVmdkStream(chunked(stream), target, { path: 'disk.vmdk', limitBytes, chunkBytes: MiB });
  return target;
}

async function qemuStream(dir: string, raw: Buffer): Promise<Buffer> {
  await writeFile(join(dir, 'disk.raw'), raw);
  await execa('qemu-img', [
    'convert',
    '-f',
    'raw',
    '-O',
    'vmdk',
    '-o',
    'subformat=streamOptimized',
    join(dir, 'disk.raw'),
    join(dir, 'q.vmdk'),
  ]);
  return readFile(join(dir, 'q.vmdk'));
}

async function vmwareStyleStream(dir: string, raw: Buffer): Promise<Buffer> {
  const path = join(dir, 'v.vmdk');
  const handle = await open(path, 'w+');
  try {
    await writeStreamOptimized(new MemoryDevice(SIZE, true, raw), handle, path, 'v.vmdk', undefined, { bytesRead: 0, bytesDone: 0 });
  } finally {
    await handle.close();
  }
  return readFile(path);
}

/** The test disk in both layouts: qemu-img's (tables in front) and the footer layout. */
async function bothLayouts(t: ExecutionContext) {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const raw = diskBytes();
  return { dir, raw, qemu: await qemuStream(dir, raw), vmware: await vmwareStyleStream(dir, raw) };
}

test('both layouts copy equal to the disk, and qemu-img reads the same bytes from the file', async (t) => {
  const { dir, raw, qemu, vmware } = await bothLayouts(t);
  t.not(qemu.readBigUInt64LE(56), 0xffffffffffffffffn, 'qemu-img: tables in front');
  t.is(vmware.readBigUInt64LE(56), 0xffffffffffffffffn, 'sbm exporter: tables at the end');
  for (const [name, stream] of [
    ['qemu-img', qemu],
    ['footer layout', vmware],
  ] as const) {
    const target = await copy(stream);
    t.true(target.bytes.equals(raw), name);
    const flat = join(dir, `${name}.raw`);
    await writeFile(join(dir, 'check.vmdk'), stream);
    await execa('qemu-img', ['convert', '-O', 'raw', join(dir, 'check.vmdk'), flat]);
    t.true((await readFile(flat)).equals(target.bytes), `${name}: qemu-img reads the same`);
    t.deepEqual(
      (await target.extents(0, SIZE)).filter((extent) => extent.kind === 'data').map((extent) => extent.offset),
      [0, 2.5 * MiB],
      `${name}: only the data was written`,
    );
  }
});

test('hostile streams: out of order, cut short, outside the disk, longer than the limit', async (t) => {
  const { qemu, vmware } = await bothLayouts(t);
  const firstGrain = Number(qemu.readBigUInt64LE(64)) * 512;
  // qemu's first two grains are the same size: swapped, they arrive out of disk order.
  const grainLength = (qemu.readUInt32LE(firstGrain + 8) + 12 + 511) & ~511;
  const swapped = Buffer.from(qemu);
  qemu.copy(swapped, firstGrain, firstGrain + grainLength, firstGrain + 2 * grainLength);
  qemu.copy(swapped, firstGrain + grainLength, firstGrain, firstGrain + grainLength);
  const outside = Buffer.from(qemu);
  outside.writeBigUInt64LE(BigInt(SIZE / 512), firstGrain);
  const cases: Array<[string, Buffer, RegExp, number?]> = [
    ['out of order', swapped, /^SBM_UNSUPPORTED: disk\.vmdk: the grain for sector 0 comes after sector 255/],
    ['outside the disk', outside, /^SBM_CORRUPT: disk\.vmdk: grain marker at byte \d+ names sector 8192/],
    ['cut inside a grain', qemu.subarray(0, firstGrain + 1000), /^SBM_CORRUPT: disk\.vmdk: ends inside a grain/],
    [
      'footer layout without its end',
      vmware.subarray(0, vmware.length - 512),
      /^SBM_CORRUPT: disk\.vmdk: ends inside a marker \(no end-of-stream/,
    ],
    ['header only', qemu.subarray(0, 300), /^SBM_CORRUPT: disk\.vmdk: ends inside the header/],
    ['longer than the limit', qemu, /^SBM_CORRUPT: disk\.vmdk: decompresses to more than 100000 bytes/, 100_000],
  ];
  for (const [name, stream, message, limit] of cases) {
    const error = await t.throwsAsync(copy(stream, limit));
    t.true(isSbmError(error), name);
    t.regex(error?.message ?? '', message, name);
  }
});

test('random damage to a stream: it copies, or fails with one SbmError', async (t) => {
  const dir = await tempDir(t);
  const stream = await vmwareStyleStream(dir, diskBytes());
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat(stream.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      async (edits) => {
        const damaged = Buffer.from(stream);
        for (const [at, value] of edits) damaged[at] = value;
        try {
          await copy(damaged);
        } catch (error) {
          if (!isSbmError(error)) throw error;
        }
      },
    ),
    { numRuns: 60 },
  );
  t.pass('every damaged stream copied or failed with an SbmError');
});
