// The pieces the VDI and VHDX writers share: nonZeroRuns (the disk walk that yields only non-zero
// bytes, two windows at a time) and EntryPages (a block table written page by page).

import test from 'ava';
import fc from 'fast-check';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EntryPages } from '../../formats/entry-pages.js';
import { nonZeroRuns } from '../../formats/nonzero-runs.js';
import { isSbmError } from '../../lib/errors.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { seededBytes, tempDir } from '../helpers/tools.js';

const KiB = 1024;

interface Write {
  readonly offset: number;
  readonly length: number;
  readonly zeros: boolean;
  readonly seed: number;
}

const writes = (size: number) =>
  fc.array(
    fc.record({ offset: fc.nat({ max: size - 1 }), length: fc.integer({ min: 1, max: 96 * KiB }), zeros: fc.boolean(), seed: fc.nat() }),
    { maxLength: 12 },
  );

async function deviceWith(size: number, list: readonly Write[]): Promise<MemoryDevice> {
  const device = new MemoryDevice(size);
  for (const write of list) {
    const length = Math.min(write.length, size - write.offset);
    await device.write(write.offset, write.zeros ? Buffer.alloc(length) : seededBytes(length, write.seed + 1));
  }
  return device;
}

test('runs hold every non-zero byte, in order, within windows, and no all-zero zero-block piece', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 700 * KiB }).chain((size) => fc.tuple(fc.constant(size), writes(size))),
      fc.constantFrom(4 * KiB, 16 * KiB),
      async ([size, list], zeroBlock) => {
        const device = await deviceWith(size, list);
        const windowBytes = 128 * KiB;
        const covered = new Uint8Array(size);
        let previousEnd = 0;
        for await (const run of nonZeroRuns(device, { windowBytes, zeroBlockBytes: zeroBlock })) {
          const end = run.offset + run.data.length;
          if (run.offset < previousEnd || run.data.length === 0) return false;
          if (Math.floor(run.offset / windowBytes) !== Math.floor((end - 1) / windowBytes)) return false;
          if (!run.data.equals(device.bytes.subarray(run.offset, end))) return false;
          // Each piece of the run inside one zero-block holds a non-zero byte (pieces of zeros are dropped).
          for (let at = run.offset; at < end; at = Math.min(end, (Math.floor(at / zeroBlock) + 1) * zeroBlock)) {
            const pieceEnd = Math.min(end, (Math.floor(at / zeroBlock) + 1) * zeroBlock);
            if (!device.bytes.subarray(at, pieceEnd).some((byte) => byte !== 0)) return false;
          }
          covered.fill(1, run.offset, end);
          previousEnd = end;
        }
        return device.bytes.every((byte, index) => byte === 0 || covered[index] === 1);
      },
    ),
    { numRuns: 150 },
  );
  t.pass();
});

test('holes are never read, windows without data never visited; progress moves; an early stop returns', async (t) => {
  const device = new MemoryDevice(1024 * KiB);
  await device.write(0, seededBytes(8 * KiB, 1));
  await device.write(900 * KiB, seededBytes(8 * KiB, 2));
  const reads: number[] = [];
  const readInto = device.readInto.bind(device);
  device.readInto = async (offset, target) => {
    reads.push(offset);
    await readInto(offset, target);
  };
  const progress: number[] = [];
  const stats = { bytesRead: 0 };
  const runs: number[] = [];
  const options = { windowBytes: 256 * KiB, stats, copy: { onProgress: (p: { bytesDone: number }) => progress.push(p.bytesDone) } };
  for await (const run of nonZeroRuns(device, options)) runs.push(run.offset);
  t.deepEqual(runs, [0, 900 * KiB]);
  t.deepEqual(reads, [0, 900 * KiB], 'only the two allocated extents are read');
  t.is(stats.bytesRead, 16 * KiB);
  t.deepEqual(progress, [256 * KiB, 1024 * KiB], 'the windows with data; the last one ends the extent range');

  for await (const _ of nonZeroRuns(device, { windowBytes: 256 * KiB })) break;
  t.pass('an early stop returns');
});

test('EntryPages writes every page once, with defaults where nothing was set, and refuses going back', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'table');
  const handle = await open(path, 'w+');
  try {
    const pages = new EntryPages(
      handle,
      100,
      4,
      10,
      (page, first, count) => {
        for (let entry = 0; entry < count; entry++) page.writeUInt32LE(0xf0000000 + first + entry, entry * 4);
      },
      3,
    );
    await pages.set(1, (page, at) => page.writeUInt32LE(11, at));
    await pages.set(7, (page, at) => page.writeUInt32LE(77, at));
    const late = await t.throwsAsync(pages.set(2, (page, at) => page.writeUInt32LE(22, at)));
    t.true(isSbmError(late, 'SBM_INTERNAL'));
    await pages.finish();
  } finally {
    await handle.close();
  }
  const file = await readFile(path);
  t.is(file.length, 100 + 10 * 4, 'the table ends at its last entry');
  const entries = Array.from({ length: 10 }, (_, index) => file.readUInt32LE(100 + index * 4));
  t.deepEqual(
    entries,
    entries.map((_, index) => (index === 1 ? 11 : index === 7 ? 77 : 0xf0000000 + index)),
  );
});
