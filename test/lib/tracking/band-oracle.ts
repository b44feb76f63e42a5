// Test oracle independent of the tracker: hashes of every band file (or its absence), so the
// truly changed set between two points is a plain comparison of files.

import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export type BandHashes = Map<number, string>;

export async function hashBands(bundlePath: string): Promise<BandHashes> {
  const hashes: BandHashes = new Map();
  const dir = join(bundlePath, 'bands');
  for (const name of await readdir(dir)) {
    hashes.set(
      Number.parseInt(name, 16),
      createHash('sha256')
        .update(await readFile(join(dir, name)))
        .digest('hex'),
    );
  }
  return hashes;
}

/** Bands whose content or existence differs between two hash maps, sorted. */
export function changedBetween(before: BandHashes, after: BandHashes): number[] {
  const all = new Set([...before.keys(), ...after.keys()]);
  return [...all].filter((band) => before.get(band) !== after.get(band)).sort((a, b) => a - b);
}

/** xorshift32 random source, so failures reproduce from the seed. */
export function rng(seed: number): (limit: number) => number {
  let state = seed >>> 0 || 1;
  return (limit) => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % limit;
  };
}

/** One hash over a bundle's Info.plist and every band (name and bytes). */
export async function hashBundle(bundlePath: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(await readFile(join(bundlePath, 'Info.plist')));
  const dir = join(bundlePath, 'bands');
  for (const name of (await readdir(dir)).sort()) {
    hash.update(`\0${name}\0`);
    hash.update(await readFile(join(dir, name)));
  }
  return hash.digest('hex');
}
