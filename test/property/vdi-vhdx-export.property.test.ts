// Property: small random sparse disks (random data, written zeros and holes; sizes up to a few
// VHDX blocks, not always a multiple of 512) exported to VDI and to VHDX read back equal through
// sbm's readers and through qemu-img (compare), pass qemu-img check, and allocate exactly the
// blocks that hold a non-zero byte.

import test from 'ava';
import fc from 'fast-check';
import { execa } from 'execa';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../formats/index.js';
import { vdiExporter } from '../../formats/vdi/vdi-exporter.js';
import { vhdxExporter } from '../../formats/vhdx/vhdx-exporter.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { requireTool, seededBytes, tempDir } from '../helpers/tools.js';

const MiB = 1024 * 1024;

interface Write {
  readonly offset: number;
  readonly length: number;
  readonly zeros: boolean;
  readonly seed: number;
}

const disk = fc
  .oneof(fc.integer({ min: 1, max: 4 * MiB }), fc.integer({ min: 31 * MiB, max: 66 * MiB }))
  .chain((size) =>
    fc.tuple(
      fc.constant(size),
      fc.array(
        fc.record({ offset: fc.nat({ max: size - 1 }), length: fc.integer({ min: 1, max: 3 * MiB }), zeros: fc.boolean(), seed: fc.nat() }),
        { maxLength: 6 },
      ),
    ),
  );

const blocksWithData = (bytes: Buffer, blockBytes: number): number => {
  let count = 0;
  for (let start = 0; start < bytes.length; start += blockBytes)
    if (bytes.subarray(start, start + blockBytes).some((b) => b !== 0)) count++;
  return count;
};

test('random sparse disks round-trip through VDI and VHDX', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  await fc.assert(
    fc.asyncProperty(disk, async ([size, writes]) => {
      const device = new MemoryDevice(size);
      const raw = join(dir, 'source.raw');
      const rawHandle = await open(raw, 'w');
      await rawHandle.truncate(size);
      for (const write of writes as Write[]) {
        const length = Math.min(write.length, size - write.offset);
        const data = write.zeros ? Buffer.alloc(length) : seededBytes(length, write.seed + 1);
        await device.write(write.offset, data);
        await rawHandle.write(data, 0, length, write.offset);
      }
      await rawHandle.close();
      const padded = Buffer.alloc(Math.ceil(size / 512) * 512);
      device.bytes.copy(padded);
      for (const [exporter, blockBytes] of [
        [vdiExporter, MiB],
        [vhdxExporter, 32 * MiB],
      ] as const) {
        const out = join(dir, `out.${exporter.name}`);
        await rm(out, { force: true });
        await exporter.export(device, out, {});
        const check = await execa('qemu-img', ['check', '-q', '-f', exporter.name, out], { reject: false });
        const compare = await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', exporter.name, raw, out], { reject: false });
        if (check.exitCode !== 0 || compare.exitCode !== 0) {
          t.log(exporter.name, size, check.stdout, check.stderr, compare.stdout, compare.stderr);
          return false;
        }
        const image = await openImage(out);
        try {
          if (image.sizeBytes !== padded.length || !(await image.read(0, image.sizeBytes)).equals(padded)) return false;
          const details = await image.details();
          const allocated =
            exporter.name === 'vdi' ? details.allocatedBlocks : ((details.blockStates as Record<string, number>).fullyPresent ?? 0);
          if (allocated !== blocksWithData(device.bytes, blockBytes)) {
            t.log(exporter.name, size, 'allocated', allocated);
            return false;
          }
        } finally {
          await image.close();
        }
      }
      return true;
    }),
    { numRuns: 15 },
  );
  t.pass();
});
