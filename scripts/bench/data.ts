// Test data for the benchmarks, built at run time (never committed): raw images with a chosen
// mix of random, zero and unallocated grains, and the VMDKs qemu-img makes from them.

import { execa } from 'execa';
import { randomFillSync } from 'node:crypto';
import { open } from 'node:fs/promises';

export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

/**
 * A sparse raw image of `sizeBytes`, about `allocatedFraction` of it written, in 1 MiB chunks:
 * random chunks, chunks of random 64 KiB grains separated by zero grains, and written zeros.
 */
export async function makeMixedRaw(path: string, sizeBytes: number, allocatedFraction = 0.5): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.truncate(sizeBytes);
    const chunk = Buffer.alloc(MIB);
    const chunks = sizeBytes / MIB;
    const every = Math.max(1, Math.round(1 / allocatedFraction));
    for (let index = 0; index < chunks; index++) {
      if (index % every !== 0) continue; // hole
      const kind = (index / every) % 3;
      if (kind === 0) randomFillSync(chunk);
      else if (kind === 1) {
        chunk.fill(0);
        for (let grain = 0; grain < 16; grain += 2) randomFillSync(chunk, grain * 65536, 65536);
      } else chunk.fill(0); // allocated zeros: a converter must not store them
      await handle.write(chunk, 0, MIB, index * MIB);
    }
  } finally {
    await handle.close();
  }
}

export async function rawToVmdk(raw: string, vmdk: string, subformat: string): Promise<void> {
  await execa('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${subformat}`, raw, vmdk]);
}
