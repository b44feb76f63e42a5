import test from 'ava';
import type { Extent } from '../../lib/block-device.js';
import { MERGE_GAP_BYTES, chunkTasks, copyDevice } from '../../lib/copy-device.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { seededBytes } from '../helpers/tools.js';

const KIB = 1024;
const MIB = 1024 * KIB;

/** Writes seeded bytes at each [offset, length) and returns the device. */
function deviceWith(sizeBytes: number, runs: ReadonlyArray<readonly [number, number]>): MemoryDevice {
  const device = new MemoryDevice(sizeBytes);
  runs.forEach(([offset, length], index) => {
    device.bytes.set(seededBytes(length, index + 1), offset);
  });
  return new MemoryDevice(sizeBytes, true, device.bytes);
}

test('chunkTasks merges data extents of one chunk across small gaps only, and never across chunks', (t) => {
  const extents: Extent[] = [
    { offset: 0, length: 64 * KIB, kind: 'data' },
    { offset: 64 * KIB, length: 64 * KIB, kind: 'zero' },
    { offset: 128 * KIB, length: 64 * KIB, kind: 'data' }, // gap 64 KiB: merged
    { offset: 192 * KIB, length: MERGE_GAP_BYTES + 4 * KIB, kind: 'hole' },
    { offset: 196 * KIB + MERGE_GAP_BYTES, length: 4 * KIB, kind: 'data' }, // gap too large: own span
    { offset: 4 * MIB - 4 * KIB, length: 8 * KIB, kind: 'data' }, // crosses the chunk edge at 4 MiB
  ];
  const tasks = chunkTasks(extents, 4 * MIB, 8 * MIB);
  t.deepEqual(
    tasks.map((task) => [task.chunkStart, task.chunkLength, task.spans.map((span) => [span.offset, span.length])]),
    [
      [
        0,
        4 * MIB,
        [
          [0, 192 * KIB],
          [196 * KIB + MERGE_GAP_BYTES, 4 * KIB],
          [4 * MIB - 4 * KIB, 4 * KIB],
        ],
      ],
      [4 * MIB, 4 * MIB, [[4 * MIB, 4 * KIB]]],
    ],
  );
});

test('copyDevice copies merged spans byte for byte and writes nothing for zero blocks inside them', async (t) => {
  const sizeBytes = 16 * MIB + 5000; // a short last chunk
  const source = deviceWith(sizeBytes, [
    [0, 64 * KIB],
    [128 * KIB, 64 * KIB], // a zero block between two data blocks of one span
    [3 * MIB + 17, 100_000], // unaligned
    [8 * MIB - 3000, 6000], // across a chunk edge
    [16 * MIB + 100, 4900], // the very end
  ]);
  const target = new MemoryDevice(sizeBytes);
  const writes: Array<[number, number]> = [];
  const originalWrite = target.write.bind(target);
  target.write = async (offset, data, options) => {
    writes.push([offset, data.length]);
    await originalWrite(offset, data, options);
  };
  const finished: Array<[number, number]> = [];
  const result = await copyDevice(source, target, {
    chunkBytes: 4 * MIB,
    onChunkWritten: (offset, length) => finished.push([offset, length]),
  });
  t.true(target.bytes.equals(source.bytes), 'bytes differ');
  // The zero block at [64 KiB, 128 KiB) is read as part of the span but never written.
  t.false(
    writes.some(([offset, length]) => offset < 128 * KIB && offset + length > 64 * KIB),
    `a write covers the zero block: ${JSON.stringify(writes)}`,
  );
  t.deepEqual(
    finished.sort((a, b) => a[0] - b[0]),
    [
      [0, 4 * MIB],
      [4 * MIB, 4 * MIB],
      [8 * MIB, 4 * MIB],
      [16 * MIB, 5000],
    ],
  );
  t.is(
    result.bytesWritten,
    writes.reduce((sum, [, length]) => sum + length, 0),
  );
});

test('copyDevice reuses its chunk buffers and reads into shared memory', async (t) => {
  const sizeBytes = 32 * MIB;
  const source = deviceWith(
    sizeBytes,
    Array.from({ length: 8 }, (_, index) => [index * 4 * MIB + 4096, 8192] as const),
  );
  const buffers = new Set<ArrayBufferLike>();
  const originalReadInto = source.readInto.bind(source);
  source.readInto = async (offset, target) => {
    buffers.add(target.buffer);
    await originalReadInto(offset, target);
  };
  const target = new MemoryDevice(sizeBytes);
  await copyDevice(source, target, { chunkBytes: 4 * MIB, concurrency: 2 });
  t.true(target.bytes.equals(source.bytes));
  t.true(buffers.size <= 2, `${buffers.size} chunk buffers for 2 lanes`);
  t.true([...buffers].every((buffer) => buffer instanceof SharedArrayBuffer));
});
