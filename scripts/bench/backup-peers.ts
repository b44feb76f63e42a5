// Backups side by side with the tools users would pick instead: restic, borg (no compression, no
// encryption: its fastest setting) and rsync --link-dest (Time Machine's way: a changed file is
// copied whole). One disk exists twice, as a sparse bundle for sbm and as a raw file for the
// peers; every round applies the same scattered writes to both (unmeasured), then each tool backs
// up once, so every tool's incremental covers exactly that round's changes.

import { execa } from 'execa';
import { randomFillSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { GIB, MIB } from './data.js';
import type { Variant, Workload } from './harness.js';
import type { BenchContext } from './workloads.js';

const SBM = resolve(fileURLToPath(new URL('../..', import.meta.url)), 'cli', 'sbm.js');
const RESTIC_ENV = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: '' };
const BORG_ENV = { BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };

/** Labels of the peers, in the order the targets look for the fastest of them. */
export const BACKUP_PEERS = ['restic backup', 'borg create', 'rsync -a --link-dest'] as const;

/**
 * Bytes a folder takes on disk (allocated blocks: holes in sparse band files take none; a file
 * hard-linked several times counts once); 0 before it exists.
 */
async function folderBytes(path: string): Promise<number> {
  if (!existsSync(path)) return 0;
  const { stdout } = await execa('du', ['-s', '--block-size=1', path]);
  return Number(stdout.split('\t')[0]);
}

/** A raw disk: half random data, a quarter written zeros, a quarter holes, in 1 MiB chunks. */
export async function makeDisk(path: string, size: number): Promise<void> {
  const handle = await open(path, 'w');
  const chunk = Buffer.alloc(MIB);
  try {
    await handle.truncate(size);
    for (let index = 0; index < size / MIB; index++) {
      if (index % 2 === 0) await handle.write(randomFillSync(chunk), 0, MIB, index * MIB);
      else if (index % 4 === 1) await handle.write(Buffer.alloc(MIB), 0, MIB, index * MIB);
    }
  } finally {
    await handle.close();
  }
}

interface Repositories {
  /** rsync's backups are folders 1, 2, 3, ... under rsyncRoot; this is the newest one's number. */
  rsyncGeneration: number;
  readonly bundle: string;
  readonly raw: string;
  readonly sbmDest: string;
  readonly restic: string;
  readonly borg: string;
  readonly rsyncRoot: string;
}

/**
 * One backup variant per tool; `first` runs before sbm's backup (the round's writes, or emptying
 * every repository). `linked`: rsync links unchanged files to its previous backup.
 */
function backupVariants(repos: Repositories, linked: boolean, first: () => Promise<void>): Variant[] {
  const rsyncFolder = (generation: number) => join(repos.rsyncRoot, String(generation));
  // Unmeasured, before each run: every repository keeps only its newest backup (the base of the
  // next), so a 4 GiB disk's rounds hold at most two generations on the scratch disk. Then
  // `sync`, so no tool's fsyncs wait behind the writeback of the previous tool's run (rsync
  // leaves 4 GiB of dirty pages).
  return withSyncFirst([
    {
      label: 'sbm backup',
      command: ['node', SBM, 'backup', repos.bundle, repos.sbmDest, '--no-progress'],
      before: async () => {
        await first();
        if (existsSync(repos.sbmDest)) await execa('node', [SBM, 'thin', repos.sbmDest, '--keep-last', '1']);
      },
      storedBytes: () => folderBytes(repos.sbmDest),
    },
    {
      label: 'restic backup',
      command: ['restic', '-r', repos.restic, 'backup', '--quiet', repos.raw],
      before: async () => {
        await execa('restic', ['-r', repos.restic, 'forget', '--keep-last', '1', '--prune', '--quiet'], { env: RESTIC_ENV });
      },
      env: RESTIC_ENV,
      storedBytes: () => folderBytes(repos.restic),
    },
    {
      label: 'borg create',
      command: ['borg', 'create', '--compression', 'none', `${repos.borg}::{now:%Y-%m-%dT%H:%M:%S.%f}`, repos.raw],
      before: async () => {
        await execa('borg', ['prune', '--keep-last', '1', repos.borg], { env: BORG_ENV });
        await execa('borg', ['compact', repos.borg], { env: BORG_ENV });
      },
      env: BORG_ENV,
      storedBytes: () => folderBytes(repos.borg),
    },
    {
      label: 'rsync -a --link-dest',
      before: async () => {
        repos.rsyncGeneration++;
        await rm(rsyncFolder(repos.rsyncGeneration - 2), { recursive: true, force: true });
      },
      command: () => {
        const link = linked ? [`--link-dest=${rsyncFolder(repos.rsyncGeneration - 1)}`] : [];
        return ['rsync', '-a', ...link, repos.raw, `${rsyncFolder(repos.rsyncGeneration)}/`];
      },
      storedBytes: () => folderBytes(repos.rsyncRoot),
    },
  ]);
}

/** Each variant's `before` followed by a `sync` (unmeasured). */
function withSyncFirst(variants: Variant[]): Variant[] {
  return variants.map((variant) => ({
    ...variant,
    before: async () => {
      await variant.before?.();
      await execa('sync');
    },
  }));
}

async function emptyRepositories(repos: Repositories): Promise<void> {
  for (const path of [repos.sbmDest, repos.restic, repos.borg, repos.rsyncRoot]) await rm(path, { recursive: true, force: true });
  await mkdir(repos.rsyncRoot, { recursive: true });
  await execa('restic', ['-r', repos.restic, 'init', '--quiet'], { env: RESTIC_ENV });
  await execa('borg', ['init', '--encryption', 'none', repos.borg], { env: BORG_ENV });
}

/** `count` writes of 4 KiB at scattered offsets, the same to the bundle (through the engine) and the raw file. */
export async function scatteredWrites(
  repos: Pick<Repositories, 'bundle' | 'raw'>,
  size: number,
  count: number,
  round: number,
): Promise<void> {
  const bundle = await SparseBundle.open(repos.bundle);
  const raw = await open(repos.raw, 'r+');
  const data = Buffer.alloc(4096);
  const blocks = size / 4096;
  try {
    for (let index = 0; index < count; index++) {
      // A multiplicative walk over the 4 KiB blocks: spread over the disk, different every round.
      const block = (Math.imul(index + round * count + 1, 2_654_435_761) >>> 0) % blocks;
      randomFillSync(data);
      await bundle.write(block * 4096, data);
      await raw.write(data, 0, data.length, block * 4096);
    }
  } finally {
    await bundle.close();
    await raw.close();
  }
}

export async function backupPeerWorkloads({ dir, quick }: BenchContext): Promise<Workload[]> {
  const size = quick ? 512 * MIB : 4 * GIB;
  const repos: Repositories = {
    rsyncGeneration: 0,
    bundle: join(dir, 'peer.sparsebundle'),
    raw: join(dir, 'peer.raw'),
    sbmDest: join(dir, 'sbm-backups'),
    restic: join(dir, 'restic-repo'),
    borg: join(dir, 'borg-repo'),
    rsyncRoot: join(dir, 'rsync-backups'),
  };
  await makeDisk(repos.raw, size);
  await execa('node', [SBM, 'convert', repos.raw, repos.bundle, '--no-progress']);
  const description = `${size / GIB} GiB disk (half random data, a quarter written zeros, a quarter holes)`;
  const peersNote =
    "Every run starts after a sync (unmeasured), so no run pays for the previous run's dirty pages. " +
    'sbm backs up the sparse bundle (tracker query, changed bands copied and fsynced, the rest hard-linked); ' +
    'restic and borg (no compression, no encryption) back up the same disk as a raw file, which they must read whole ' +
    "because it changed; rsync --link-dest copies the changed file whole into a new folder (Time Machine's way). " +
    '"MiB added per run" is the growth of each repository on disk (du -s --block-size=1: allocated blocks, so holes ' +
    'count nothing; hard links counted once).';
  const full: Workload = {
    id: 'backup-full-peers',
    title: `Full backup of a ${description} into an empty repository`,
    notes: `Every run starts from an empty repository (restic init / borg init, unmeasured). ${peersNote}`,
    subject: 'sbm backup',
    variants: backupVariants(repos, false, () => emptyRepositories(repos)),
  };
  const incremental = (writes: number, label: string): Workload => {
    let round = 0;
    return {
      id: `backup-incremental-${label.replace(/[^\w]+/g, '-')}`,
      title: `Incremental backup after ${label} of a ${description}`,
      notes: `Each round writes ${writes} scattered 4 KiB blocks (unmeasured), then every tool backs up once. ${peersNote}`,
      subject: 'sbm backup',
      variants: backupVariants(repos, true, async () => {
        round++;
        await scatteredWrites(repos, size, writes, round);
      }),
    };
  };
  // The full workload leaves one backup in every repository: the base the incremental rounds build on.
  return [full, incremental(50, '50 x 4 KiB writes'), incremental(Math.round(size / 100 / 4096), '1% of the disk in 4 KiB writes')];
}
