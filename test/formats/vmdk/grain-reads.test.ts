// The batched read paths of sparse extents: grains that follow each other in the file but not in
// virtual space (zero grains between them) are read with one readv; streamOptimized grains are
// inflated straight into shared memory when the caller's buffer is a SharedArrayBuffer, and
// copied back otherwise. Both must give the same bytes as the raw source, whole and in pieces.

import test, { type ExecutionContext } from 'ava';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openVmdk } from '../../../formats/vmdk/open-vmdk.js';
import { requireTool, tempDir } from '../../helpers/tools.js';
import { MiB, type DataRun, makeSourceRaw, qemuImg } from './vmdk-test-kit.js';

const GRAIN = 64 * 1024;
// Every other grain of the first 2 MiB holds data (qemu-img stores them one after another in the
// file), then a 1 MiB run, then a short unaligned run in a grain of its own.
const RUNS: DataRun[] = [
  ...Array.from({ length: 16 }, (_, index) => ({ offset: index * 2 * GRAIN, length: GRAIN, seed: index + 1 })),
  { offset: 3 * MiB, length: MiB, seed: 40 },
  { offset: 5 * MiB + 1000, length: 3000, seed: 41 },
];
const SIZE = 6 * MiB;

async function makeDisk(t: ExecutionContext, subformat: string): Promise<{ disk: string; raw: Buffer }> {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const source = join(dir, 'source.raw');
  const disk = join(dir, `${subformat}.vmdk`);
  await makeSourceRaw(source, SIZE, RUNS);
  await qemuImg(['convert', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${subformat}`, source, disk]);
  return { disk, raw: await readFile(source) };
}

/** Ranges to read: the whole disk, and pieces that start and end inside grains. */
const RANGES: ReadonlyArray<readonly [number, number]> = [
  [0, SIZE],
  [GRAIN / 2, 5 * GRAIN],
  [3 * MiB - 100, MiB + 200],
  [5 * MiB + 999, 3002],
];

for (const subformat of ['monolithicSparse', 'streamOptimized']) {
  for (const shared of [false, true]) {
    test(`${subformat}: reads into ${shared ? 'shared' : 'ordinary'} memory match the source`, async (t) => {
      const { disk, raw } = await makeDisk(t, subformat);
      const image = await openVmdk(disk);
      t.teardown(() => image.close());
      for (const [offset, length] of RANGES) {
        const target = shared ? Buffer.from(new SharedArrayBuffer(length + 100), 50, length) : Buffer.alloc(length);
        target.fill(0xa5);
        await image.readInto(offset, target);
        t.true(target.equals(raw.subarray(offset, offset + length)), `bytes differ in [${offset}, ${offset + length})`);
      }
    });
  }
}

// Serial: the readv spy patches FileHandle's prototype, which the other tests of this file also use.
test.serial('monolithicSparse: grains split by zero grains are read with one readv', async (t) => {
  const { disk, raw } = await makeDisk(t, 'monolithicSparse');
  const image = await openVmdk(disk);
  t.teardown(() => image.close());
  const probe = await open(disk, 'r');
  const proto = Object.getPrototypeOf(probe) as { readv: (...args: unknown[]) => Promise<unknown> };
  await probe.close();
  const original = proto.readv;
  const buffersPerCall: number[] = [];
  proto.readv = function (this: unknown, ...args: unknown[]) {
    buffersPerCall.push((args[0] as unknown[]).length);
    return original.apply(this, args);
  };
  t.teardown(() => {
    proto.readv = original;
  });
  const target = Buffer.alloc(2 * MiB);
  await image.readInto(0, target);
  t.true(target.equals(raw.subarray(0, 2 * MiB)));
  t.deepEqual(buffersPerCall, [16], 'the 16 data grains in one readv');
});
