// Writes images/sample.img: a 32 MiB sparse raw disk with deterministic pseudo-random data in a
// few places (one run crosses the 8 MiB band edge) and holes everywhere else.
import { open } from 'node:fs/promises';

const MIB = 1024 * 1024;
const path = process.argv[2] ?? 'images/sample.img';
const SIZE = 32 * MIB;
const REGIONS = [
  { offset: 0, length: 512 * 1024, seed: 1 },
  { offset: 8 * MIB - 32 * 1024, length: 64 * 1024, seed: 2 },
  { offset: 20 * MIB + 4096, length: 768 * 1024, seed: 3 },
  { offset: SIZE - 4096, length: 4096, seed: 4 },
];

function bytes(length, seed) {
  const out = Buffer.alloc(length);
  let state = seed;
  for (let index = 0; index < length; index++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[index] = state & 0xff;
  }
  return out;
}

const handle = await open(path, 'w');
await handle.truncate(SIZE);
for (const region of REGIONS) await handle.write(bytes(region.length, region.seed), 0, region.length, region.offset);
await handle.close();
