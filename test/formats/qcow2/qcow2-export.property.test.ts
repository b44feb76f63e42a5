// Property: any small sparse disk (random size, random runs of random bytes, text and zeros)
// exported as qcow2, with or without compression and with clusters of 512 B, 4 KiB or 64 KiB (the
// small ones put many L2 tables and refcount blocks, interleaved with data, into a small file),
// passes `qemu-img check` with no errors and no leaks, allocates exactly the clusters that hold a
// non-zero byte, and reads back through sbm's qcow2 reader byte for byte.

import test from 'ava';
import fc from 'fast-check';
import { execa } from 'execa';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { writeQcow2 } from '../../../formats/qcow2/qcow2-writer.js';
import { isAllZero } from '../../../lib/block-device.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { requireTool, tempDir } from '../../helpers/tools.js';
import { KiB, MiB, type Run, type QemuCheck, runBytes } from './qcow2-export-kit.js';

const runArbitrary = (maxOffset: number) =>
  fc.record({
    offset: fc.nat({ max: maxOffset }),
    length: fc.integer({ min: 1, max: 200 * KiB }),
    fill: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constant<'zero'>('zero'), fc.constant<'text'>('text')),
  });

const diskArbitrary = fc.record({
  sizeBytes: fc.integer({ min: 0, max: 3 * MiB }),
  runs: fc.array(runArbitrary(3 * MiB), { maxLength: 12 }),
  compress: fc.boolean(),
  clusterBits: fc.constantFrom(9, 12, 16),
});

function nonZeroClusters(bytes: Buffer, clusterSize: number): number {
  let count = 0;
  for (let at = 0; at < bytes.length; at += clusterSize) if (!isAllZero(bytes.subarray(at, at + clusterSize))) count++;
  return count;
}

test('random sparse disks round-trip through the qcow2 exporter and reader, and pass qemu-img check', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const image = join(dir, 'disk.qcow2');
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(diskArbitrary, async (disk) => {
      runs++;
      const device = new MemoryDevice(disk.sizeBytes);
      for (const run of disk.runs as Run[]) {
        const length = Math.min(run.length, disk.sizeBytes - run.offset);
        if (length > 0) await device.write(run.offset, runBytes({ ...run, length }));
      }
      await rm(image, { force: true });
      const handle = await open(image, 'wx');
      try {
        await writeQcow2(device, handle, image, { compress: disk.compress, clusterBits: disk.clusterBits });
      } finally {
        await handle.close();
      }
      const check = await execa('qemu-img', ['check', '-f', 'qcow2', '--output=json', image], { reject: false });
      if (check.exitCode !== 0) return false;
      const report = JSON.parse(check.stdout) as QemuCheck;
      if ((report.corruptions ?? 0) !== 0 || (report.leaks ?? 0) !== 0) return false;
      const expected = Buffer.alloc(Math.ceil(disk.sizeBytes / 512) * 512);
      device.bytes.copy(expected);
      if ((report['allocated-clusters'] ?? 0) !== nonZeroClusters(expected, 2 ** disk.clusterBits)) return false;
      const reader = await openImage(image);
      try {
        if (reader.sizeBytes !== expected.length) return false;
        return expected.length === 0 || (await reader.read(0, expected.length)).equals(expected);
      } finally {
        await reader.close();
      }
    }),
    { numRuns: 40 },
  );
  t.is(runs, 40);
});
