// The benchmark workloads of `npm run bench`: each builds its data in a scratch folder and
// returns the variants to time (sbm first, then its peers).

import { execa } from 'execa';
import { randomFillSync } from 'node:crypto';
import { cp, mkdir, open, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { GIB, MIB, makeMixedRaw, rawToVmdk } from './data.js';
import type { Workload } from './harness.js';
import { BundleSession } from '../../lib/session/bundle-session.js';

const SBM = resolve(fileURLToPath(new URL('../..', import.meta.url)), 'cli', 'sbm.js');
const sbm = (...args: string[]) => ['node', SBM, ...args];

export interface BenchContext {
  readonly dir: string;
  readonly quick: boolean;
  /** NODE_EXTRA_CA_CERTS as the environment set it (runs go without it). */
  readonly extraCaCerts?: string | undefined;
}

export async function convertWorkloads({ dir, quick }: BenchContext): Promise<Workload[]> {
  const size = quick ? 256 * MIB : GIB;
  const raw = join(dir, 'mixed.raw');
  await makeMixedRaw(raw, size, 0.5);
  const workloads: Workload[] = [];
  for (const subformat of ['monolithicSparse', 'streamOptimized']) {
    const vmdk = join(dir, `${subformat}.vmdk`);
    await rawToVmdk(raw, vmdk, subformat);
    workloads.push(convertWorkload(`convert-${subformat}`, `a ${size / GIB} GiB-virtual ${subformat} VMDK`, vmdk, size));
  }
  // The formats of the other hypervisors, made by qemu-img from the same raw disk.
  for (const [id, name, args] of [
    ['convert-qcow2', 'qcow2', ['-O', 'qcow2']],
    ['convert-qcow2-compressed', 'qcow2 (deflate-compressed clusters)', ['-O', 'qcow2', '-c']],
    ['convert-vhdx', 'dynamic VHDX', ['-O', 'vhdx']],
    ['convert-vdi', 'dynamic VDI', ['-O', 'vdi']],
  ] as const) {
    const image = join(dir, `${id}.img`);
    await execa('qemu-img', ['convert', '-q', '-f', 'raw', ...args, raw, image]);
    workloads.push(convertWorkload(id, `a ${size / GIB} GiB-virtual ${name} image`, image, size));
  }
  return workloads;
}

/** Labels of the two qemu-img rows of every convert table (the targets find them by these). */
export const QEMU_IMG_UNSAFE = 'qemu-img convert -O raw (default cache mode: never flushed)';
export const QEMU_IMG_DURABLE = 'qemu-img convert -t writeback -O raw (fdatasync at close: as durable as sbm)';

/**
 * sbm convert of `image` against qemu-img convert -O raw in its default cache mode (unsafe: it
 * never flushes) and in writeback mode (one fdatasync at close), with Node's start-up as the floor.
 */
function convertWorkload(id: string, what: string, image: string, size: number): Workload {
  const bundle = `${image}.sparsebundle`;
  const flat = `${image}.out.raw`;
  const removeFlat = () => settled(rm(flat, { force: true }));
  return {
    id,
    title: `Convert ${what} (half allocated; random, zero-grain and zero chunks)`,
    notes:
      'sbm writes a sparse bundle (zero blocks create nothing) and makes it durable before renaming it into place. ' +
      "qemu-img writes a sparse raw file; its convert's default cache mode is `unsafe` (no fsync or fdatasync at " +
      'all: the file is left in the page cache), and `-t writeback` makes it fdatasync the file at close, ' +
      'as durable as sbm. Every run starts after a `sync` (unmeasured), so ' +
      "no run pays for the previous run's dirty pages.",
    subject: 'sbm convert',
    variants: [
      {
        label: 'sbm convert',
        command: sbm('convert', image, bundle, '--force', '--no-progress'),
        before: () => settled(rm(bundle, { recursive: true, force: true })),
        bytes: size,
      },
      {
        label: QEMU_IMG_UNSAFE,
        command: ['qemu-img', 'convert', '-O', 'raw', image, flat],
        before: removeFlat,
        bytes: size,
      },
      {
        label: QEMU_IMG_DURABLE,
        command: ['qemu-img', 'convert', '-t', 'writeback', '-O', 'raw', image, flat],
        before: removeFlat,
        bytes: size,
      },
      NODE_STARTUP,
    ],
  };
}

/** Waits for `cleanup`, then flushes every dirty page, so the next measured run starts clean. */
async function settled(cleanup: Promise<void>): Promise<void> {
  await cleanup;
  await execa('sync');
}

/** The floor under every `sbm` call: Node starting and exiting with nothing to do. */
const NODE_STARTUP = { label: 'node -e 0 (Node start-up alone, the floor of any sbm call)', command: ['node', '-e', '0'] } as const;

/** Peak memory of convert and of a full backup on a larger virtual disk (mostly holes). */
export async function memoryWorkloads({ dir, quick }: BenchContext): Promise<Workload[]> {
  const size = quick ? 2 * GIB : 8 * GIB;
  const raw = join(dir, 'big.raw');
  await makeMixedRaw(raw, size, 1 / 16);
  const vmdk = join(dir, 'big.vmdk');
  await rawToVmdk(raw, vmdk, 'monolithicSparse');
  await rm(raw);
  const bundle = join(dir, 'big.sparsebundle');
  const flat = join(dir, 'big.out.raw');
  return [
    {
      id: 'memory-convert',
      title: `Peak memory: convert a ${size / GIB} GiB-virtual monolithicSparse VMDK (1/16 allocated)`,
      notes: 'The column that matters is peak RSS: it must stay bounded (target < 256 MiB) whatever the disk size.',
      subject: 'sbm convert',
      variants: [
        {
          label: 'sbm convert',
          command: sbm('convert', vmdk, bundle, '--force', '--no-progress'),
          before: () => rm(bundle, { recursive: true, force: true }),
        },
        {
          label: 'qemu-img convert -O raw',
          command: ['qemu-img', 'convert', '-O', 'raw', vmdk, flat],
          before: () => rm(flat, { force: true }),
        },
      ],
    },
    await memoryBackupWorkload(dir, vmdk, size),
  ];
}

/** A full backup of the same disk as a bundle: every band is read, hashed, copied and fsynced. */
async function memoryBackupWorkload(dir: string, vmdk: string, size: number): Promise<Workload> {
  const source = join(dir, 'big-source.sparsebundle');
  await execa('node', [SBM, 'convert', vmdk, source, '--no-progress']);
  const backups = join(dir, 'backups');
  const copy = join(dir, 'bands-copy');
  return {
    id: 'memory-backup',
    title: `Peak memory: full backup of a ${size / GIB} GiB-virtual bundle (1/16 allocated)`,
    notes:
      'Each run backs up into an empty destination, so every band is read, hashed, written and fsynced. ' +
      'The peer copies the bands folder and syncs it, ' +
      'for scale. The column that matters is peak RSS (target < 256 MiB whatever the disk size).',
    subject: 'sbm backup (full)',
    variants: [
      {
        label: 'sbm backup (full)',
        command: sbm('backup', source, backups, '--no-progress'),
        before: () => settled(rm(backups, { recursive: true, force: true })),
      },
      {
        label: 'cp -r of the bands folder, then sync -f',
        command: ['sh', '-c', `cp -r ${join(source, 'bands')} ${copy} && sync -f ${copy}`],
        before: () => settled(rm(copy, { recursive: true, force: true })),
      },
    ],
  };
}

/** changed-bands on a 1 TiB-virtual bundle vs stat-ing every band file. */
export async function changedBandsWorkloads({ dir, quick, extraCaCerts }: BenchContext): Promise<Workload[]> {
  const populated = quick ? 4000 : 20_000;
  const workloads: Workload[] = [];
  const variants = [];
  for (const [label, sizeBytes, changes] of [
    ['1 TiB, 10 changed', 1024 * GIB, 10],
    ['1 TiB, 1000 changed', 1024 * GIB, 1000],
    ['1 GiB, 10 changed', GIB, 10],
  ] as const) {
    const path = join(dir, `${label.replace(/[^\w]+/g, '-')}.sparsebundle`);
    const bundle = await SparseBundle.create(path, { sizeBytes, bandSizeBytes: 8 * MIB });
    const bandCount = Math.min(bundle.bandCount, populated);
    const stride = Math.floor(bundle.bandCount / bandCount);
    for (let index = 0; index < bandCount; index++) await bundle.write(index * stride * 8 * MIB, Buffer.from([1]));
    const token = await new BundleSession(bundle).token();
    for (let index = 0; index < changes; index++) await bundle.write(((index * 7) % bandCount) * stride * 8 * MIB + 1, Buffer.from([2]));
    await bundle.close();
    variants.push({
      label: `sbm changed-bands (${label}, ${bandCount} band files)`,
      command: sbm('changed-bands', path, '--since', token),
    });
    if (label === '1 TiB, 10 changed') {
      variants.push({
        label: `stat every band file (find -newer, ${bandCount} band files)`,
        command: ['find', join(path, 'bands'), '-type', 'f', '-newer', join(path, 'Info.plist')],
      });
      variants.push(NODE_STARTUP);
      if (extraCaCerts !== undefined) {
        const env = { NODE_EXTRA_CA_CERTS: extraCaCerts };
        variants.push({
          label: `sbm changed-bands (${label}) with NODE_EXTRA_CA_CERTS set`,
          command: sbm('changed-bands', path, '--since', token),
          env,
        });
        variants.push({ ...NODE_STARTUP, label: 'node -e 0 with NODE_EXTRA_CA_CERTS set', env });
      }
    }
  }
  workloads.push({
    id: 'changed-bands',
    title: 'changed-bands: cost grows with the changes, not the disk',
    notes:
      `Bundles with ${populated} band files (1 TiB virtual) or all of their bands (1 GiB). The peer stats every band file, ` +
      'which is what a tracker-less backup script must do. ' +
      'Every sbm call also audits for edits made behind its back: it stats every band ' +
      'file when there are at most 4,096 (the 1 GiB bundle, and every bundle of a --quick run), else only the bands folder (--audit auto).',
    subject: variants[0]?.label ?? '',
    variants,
  });
  return workloads;
}

/** Incremental backup after 1% of the bands changed, vs rsync --link-dest of the flat image and cp of the changed bands. */
export async function backupWorkloads({ dir, quick }: BenchContext): Promise<Workload[]> {
  const size = quick ? 512 * MIB : 4 * GIB;
  const bandSize = 8 * MIB;
  const bandCount = size / bandSize;
  const changedPerRun = Math.max(1, Math.round(bandCount / 100));
  const path = join(dir, 'vm.sparsebundle');
  const flat = join(dir, 'vm.raw');
  const dest = join(dir, 'backups');
  const bundle = await SparseBundle.create(path, { sizeBytes: size, bandSizeBytes: bandSize });
  const flatHandle = await open(flat, 'w');
  const chunk = Buffer.alloc(bandSize);
  for (let band = 0; band < bandCount; band++) {
    randomFillSync(chunk);
    await bundle.write(band * bandSize, chunk);
    await flatHandle.write(chunk, 0, bandSize, band * bandSize);
  }
  await bundle.close();
  await flatHandle.close();
  await execa('node', [SBM, 'backup', path, dest]);
  const rsyncBase = join(dir, 'rsync', 'base');
  await mkdir(rsyncBase, { recursive: true });
  await cp(flat, join(rsyncBase, 'vm.raw'));
  let round = 0;
  let changedBands: string[] = [];
  // Before each timed run: change 1% of the bands (a different set each time) in the bundle and
  // in the flat image alike, unmeasured.
  const dirty = async () => {
    round++;
    const live = await SparseBundle.open(path);
    const flatFile = await open(flat, 'r+');
    changedBands = [];
    for (let index = 0; index < changedPerRun; index++) {
      const band = (round * 31 + index * 97) % bandCount;
      const data = Buffer.alloc(4096);
      randomFillSync(data);
      await live.write(band * bandSize + 4096 * index, data);
      await flatFile.write(data, 0, data.length, band * bandSize + 4096 * index);
      changedBands.push(join(path, 'bands', band.toString(16)));
    }
    await live.close();
    await flatFile.close();
    await rm(join(dir, 'rsync', 'next'), { recursive: true, force: true });
    await rm(join(dir, 'cp-dest'), { recursive: true, force: true });
    await mkdir(join(dir, 'cp-dest'));
  };
  // Built after `dirty` chose the bands; sync makes it as durable as sbm's fsynced copies.
  const cpCommand = () => ['sh', '-c', `cp ${changedBands.join(' ')} ${join(dir, 'cp-dest')}/ && sync -f ${join(dir, 'cp-dest')}`];
  return [
    {
      id: 'backup-incremental',
      title: `Incremental backup after ${changedPerRun} of ${bandCount} bands (1%) of a ${size / GIB} GiB disk changed`,
      notes:
        'sbm: hold the bundle (no snapshot when unmounted), tracker query, copy the changed bands (hashed while written, fsynced), ' +
        'hard-link the rest, manifest. rsync --link-dest must copy the whole flat image because it changed; ' +
        'cp copies just the changed band files (the lower bound).',
      subject: 'sbm backup',
      variants: [
        { label: 'sbm backup', command: sbm('backup', path, dest), before: dirty },
        {
          label: 'rsync --link-dest (flat image)',
          command: ['rsync', '-a', `--link-dest=${rsyncBase}`, flat, `${join(dir, 'rsync', 'next')}/`],
          before: dirty,
        },
        { label: 'cp changed bands', command: cpCommand, before: dirty },
        NODE_STARTUP,
      ],
    },
  ];
}
