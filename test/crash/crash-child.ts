// Crash-test workload, run as a child process and SIGKILLed at a random moment by
// crash-harness.ts. It writes, trims, flushes, issues tokens and takes/deletes snapshots at random,
// and reports progress on stdout with synchronous writes *before* each step can have effects:
//
//   READY                          bundle open
//   OP w <offset> <length> <seed>  a write of seededBytes(length, seed) is about to be issued
//   OP z <offset> <length>         a trim is about to be issued
//   FLUSHED <n>                    the first n OP lines are durable
//   TOKEN <token> <hashes json>    token issued; band hashes at that point
//   SNAPPING <name> / SNAP <name> <hash>     snapshot about to be taken / taken (its hash)
//   DELETING <name>                snapshot about to be deleted
//   REVERTING <name> / REVERTED <name>       revert to a snapshot about to start / done
//
// usage: node --import tsx test/crash/crash-child.ts <bundle> <seed>

import { writeSync } from 'node:fs';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { seededBytes } from '../helpers/tools.js';
import { hashBands, hashBundle, rng } from '../lib/tracking/band-oracle.js';
import { BundleSession } from '../../lib/session/bundle-session.js';

function say(line: string): void {
  const bytes = Buffer.from(`${line}\n`);
  for (let done = 0; done < bytes.length; ) {
    try {
      done += writeSync(1, bytes, done);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
    }
  }
}

const [path, seedText] = process.argv.slice(2);
if (path === undefined || seedText === undefined) throw new Error('usage: crash-child.ts <bundle> <seed>');
const random = rng(Number(seedText));
const bundle = await SparseBundle.open(path);
const size = bundle.sizeBytes;
const band = bundle.bandSizeBytes;
let announced = 0;
let snapshotCounter = 0;
say('READY');
for (;;) {
  const choice = random(100);
  if (choice < 70) {
    // A batch of concurrent, non-overlapping operations (exercises the shared fsync).
    const ranges: Array<[number, number]> = [];
    const batch = 1 + random(4);
    const work: Array<() => Promise<void>> = [];
    for (let attempt = 0; attempt < batch * 3 && ranges.length < batch; attempt++) {
      const length = 1 + random(random(4) === 0 ? 2 * band : 64 * 1024);
      const offset = random(size - length);
      if (ranges.some(([start, end]) => offset < end && start < offset + length)) continue;
      ranges.push([offset, offset + length]);
      if (random(6) === 0) {
        say(`OP z ${offset} ${length}`);
        work.push(() => bundle.trim(offset, length));
      } else {
        const seed = 1 + random(0x7fffffff);
        say(`OP w ${offset} ${length} ${seed}`);
        const data = seededBytes(length, seed);
        work.push(() => bundle.write(offset, data));
      }
      announced++;
    }
    await Promise.all(work.map((run) => run()));
  } else if (choice < 85) {
    const durable = announced;
    await bundle.flush();
    say(`FLUSHED ${durable}`);
  } else if (choice < 93) {
    const token = await new BundleSession(bundle).token();
    say(`TOKEN ${token} ${JSON.stringify([...(await hashBands(path))])}`);
  } else if (choice < 96) {
    const all = await new BundleSession(bundle).snapshots.list();
    const target = all[random(Math.max(1, all.length))];
    if (target !== undefined) {
      say(`REVERTING ${target.name}`);
      await new BundleSession(bundle).snapshots.revert(target.name);
      say(`REVERTED ${target.name}`);
    }
  } else {
    const name = `s${seedText}-${snapshotCounter++}`;
    say(`SNAPPING ${name}`);
    const info = await new BundleSession(bundle).snapshots.create(name);
    say(`SNAP ${name} ${await hashBundle(info.path)}`);
    const all = await new BundleSession(bundle).snapshots.list();
    for (const old of all.slice(0, Math.max(0, all.length - 3))) {
      say(`DELETING ${old.name}`);
      await new BundleSession(bundle).snapshots.delete(old.name);
    }
  }
}
