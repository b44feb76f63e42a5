// `sbm sync` of a disk that stays in its hypervisor's format, against what a user would run
// instead on the same disk kept as a raw file: rsync --inplace (its delta algorithm, reading both
// copies) and restic backup (reading the whole changed file). The source is a qcow2 chain: each
// round adds an overlay, as a VM snapshot does, and writes 1% of the disk into it in scattered
// 64 KiB blocks (the same bytes go to the raw file), so sbm's delta mode reads only the new layer.

import { execa } from 'execa';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDisk } from './backup-peers.js';
import { GIB, MIB } from './data.js';
import type { Workload } from './harness.js';
import type { BenchContext } from './workloads.js';

const SBM = resolve(fileURLToPath(new URL('../..', import.meta.url)), 'cli', 'sbm.js');
const RESTIC_ENV = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: '' };
const BLOCK = 64 * 1024;

export async function syncWorkloads({ dir, quick }: BenchContext): Promise<Workload[]> {
  const size = quick ? GIB : 8 * GIB;
  const raw = join(dir, 'disk.raw');
  await makeDisk(raw, size);
  const chain = { top: join(dir, 'base.qcow2'), round: 0 };
  await execa('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, chain.top]);
  const mirror = join(dir, 'mirror.raw');
  await execa('cp', ['--sparse=always', raw, mirror]);
  const restic = join(dir, 'restic-repo');
  await execa('restic', ['-r', restic, 'init', '--quiet'], { env: RESTIC_ENV });
  await execa('restic', ['-r', restic, 'backup', '--quiet', raw], { env: RESTIC_ENV });
  const bundles = { delta: join(dir, 'delta.sparsebundle'), full: join(dir, 'full.sparsebundle') };
  for (const bundle of Object.values(bundles)) {
    await execa('node', [SBM, 'create', bundle, '--size', String(size)]);
    await execa('node', [SBM, 'sync', chain.top, bundle, '--no-progress']);
  }
  const writes = Math.round(size / 100 / BLOCK);
  // Unmeasured, before sbm's delta sync: a new overlay (a VM snapshot) and 1% of the disk written
  // into it and into the raw file alike.
  const newRound = async () => {
    chain.round++;
    const top = join(dir, `top-${chain.round}.qcow2`);
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', chain.top, '-F', 'qcow2', top]);
    chain.top = top;
    const pattern = (chain.round * 37) % 255 || 1;
    const commands: string[] = [];
    const file = await open(raw, 'r+');
    const data = Buffer.alloc(BLOCK, pattern);
    try {
      for (let index = 0; index < writes; index++) {
        const block = (Math.imul(index + chain.round * writes + 1, 2_654_435_761) >>> 0) % (size / BLOCK);
        commands.push('-c', `write -P ${pattern} ${block * BLOCK} ${BLOCK}`);
        await file.write(data, 0, BLOCK, block * BLOCK);
      }
    } finally {
      await file.close();
    }
    await execa('qemu-io', ['-f', 'qcow2', top, ...commands], { maxBuffer: 64 * MIB });
  };
  return [
    {
      id: 'sync-after-1-percent',
      title: `Keep a copy of a ${size / GIB} GiB disk in step after 1% of it was written (scattered 64 KiB blocks)`,
      notes:
        'sbm syncs the qcow2 chain into a sparse bundle: delta mode reads only the overlay added since the last sync ' +
        '(the layers below are unchanged), --full reads and compares every band (its own bundle, one round behind like the rest). ' +
        'The peers hold the same disk as a raw file: rsync --inplace --no-whole-file runs its delta algorithm over both copies; ' +
        'restic backup re-reads and re-chunks the changed file. `sbm sync --json` reports the bytes each run read.',
      subject: 'sbm sync (delta mode)',
      variants: [
        {
          label: 'sbm sync (delta mode)',
          command: () => ['node', SBM, 'sync', chain.top, bundles.delta, '--no-progress'],
          before: newRound,
        },
        { label: 'sbm sync --full', command: () => ['node', SBM, 'sync', chain.top, bundles.full, '--full', '--no-progress'] },
        { label: 'rsync --inplace --no-whole-file', command: ['rsync', '--inplace', '--no-whole-file', raw, mirror] },
        { label: 'restic backup', command: ['restic', '-r', restic, 'backup', '--quiet', raw], env: RESTIC_ENV },
      ],
    },
  ];
}
