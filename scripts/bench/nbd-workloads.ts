// NBD throughput and IOPS: the same bytes served by `sbm mount` (a bundle), `qemu-nbd -f raw` and
// `nbdkit file` (a raw file), each on a Unix socket, driven by nbdcopy and `qemu-img bench`.
// The servers live for all NBD workloads and stop after the last one.

import { type ResultPromise, execa } from 'execa';
import { randomFillSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile, truncate, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { SbmError } from '../../lib/errors.js';
import { MIB } from './data.js';
import type { Workload } from './harness.js';
import type { BenchContext } from './workloads.js';

const SBM = resolve(fileURLToPath(new URL('../..', import.meta.url)), 'cli', 'sbm.js');

interface Server {
  readonly label: string;
  readonly uri: string;
  readonly child: ResultPromise;
}

async function waitForSocket(path: string, child: ResultPromise): Promise<void> {
  for (let tries = 0; tries < 400 && !existsSync(path); tries++) {
    if (child.exitCode !== null)
      throw new SbmError('SBM_LISTEN', `benchmark server exited before listening on ${path}`, { path, exitCode: child.exitCode });
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  if (!existsSync(path)) throw new SbmError('SBM_LISTEN', `benchmark server did not create ${path} within 10 s`, { path });
}

async function startServers(dir: string, bundle: string, raw: string): Promise<Server[]> {
  const servers: Server[] = [];
  const sbmSocket = join(dir, 'sbm.sock');
  const sbmChild = execa('node', [SBM, 'mount', bundle, '--socket', sbmSocket, '--name', 'disk'], { reject: false });
  await waitForSocket(sbmSocket, sbmChild);
  servers.push({ label: 'sbm mount', uri: `nbd+unix:///disk?socket=${sbmSocket}`, child: sbmChild });
  const qemuSocket = join(dir, 'qemu.sock');
  const qemuChild = execa('qemu-nbd', ['-f', 'raw', '-t', '-k', qemuSocket, '--cache=writeback', raw], { reject: false });
  await waitForSocket(qemuSocket, qemuChild);
  servers.push({ label: 'qemu-nbd -f raw', uri: `nbd+unix:///?socket=${qemuSocket}`, child: qemuChild });
  const kitSocket = join(dir, 'nbdkit.sock');
  const kitChild = execa('nbdkit', ['-f', '-U', kitSocket, 'file', join(dir, 'nbdkit.raw')], { reject: false });
  await waitForSocket(kitSocket, kitChild);
  servers.push({ label: 'nbdkit file', uri: `nbd+unix:///?socket=${kitSocket}`, child: kitChild });
  return servers;
}

export async function nbdWorkloads({ dir, quick }: BenchContext): Promise<Workload[]> {
  const size = (quick ? 256 : 1024) * MIB;
  const raw = join(dir, 'source.raw');
  const handle = await open(raw, 'w');
  const chunk = Buffer.alloc(MIB);
  for (let offset = 0; offset < size; offset += MIB) await handle.write(randomFillSync(chunk), 0, MIB, offset);
  await handle.close();
  // Every server starts from an empty disk (an empty bundle, sparse raw files) and gets the same
  // bytes written by nbdcopy before any measured run. Copying the raw files with cp instead left
  // the peers' pages cached in small folios while sbm's band files got the large folios that
  // nbdcopy's 256 KiB writes create, and on this kernel a 4 KiB write into a page of a large folio
  // costs several times more (BENCHMARKS.md): the random-write rows measured that, not the servers.
  await truncateTo(join(dir, 'qemu.raw'), size);
  await truncateTo(join(dir, 'nbdkit.raw'), size);
  const bundle = join(dir, 'bench.sparsebundle');
  await (await SparseBundle.create(bundle, { sizeBytes: size })).close();
  const servers = await startServers(dir, bundle, join(dir, 'qemu.raw'));
  for (const server of servers) await execa('nbdcopy', [raw, server.uri]);
  const stop = async () => {
    for (const server of servers) {
      if (server.child.pid !== undefined && server.child.exitCode === null) process.kill(server.child.pid, 'SIGTERM');
      await server.child;
    }
  };
  const requests = quick ? 50_000 : 200_000;
  const make = (id: string, title: string, args: (uri: string) => string[], bytes?: number): Workload => ({
    id,
    title,
    notes:
      `${size / MIB} MiB of random data; sbm serves a sparse bundle, the peers a raw file. Each server starts empty and ` +
      'gets the same data from nbdcopy before the first measured run, so every file is in the same page-cache state. ' +
      "Peak RSS in the table is the client's; the sbm mount server's own peak (VmHWM, since it started) is in the targets.",
    subject: 'sbm mount',
    serverPeakRssMiB: () => peakRssMiB(servers[0]?.child.pid),
    variants: servers.map((server) => ({ label: server.label, command: args(server.uri), ...(bytes === undefined ? {} : { bytes }) })),
  });
  const workloads: Workload[] = [
    make('nbd-seq-write', 'NBD sequential write: nbdcopy raw file -> server', (uri) => ['nbdcopy', raw, uri], size),
    make('nbd-seq-read', 'NBD sequential read: nbdcopy server -> null:', (uri) => ['nbdcopy', uri, 'null:'], size),
    make('nbd-rand-read', `NBD 4 KiB random reads at queue depth 16 (qemu-img bench, ${requests} requests)`, (uri) => [
      'qemu-img',
      'bench',
      '-f',
      'raw',
      '-s',
      '4096',
      '-d',
      '16',
      '-c',
      String(requests),
      uri,
    ]),
    make('nbd-rand-write', `NBD 4 KiB random writes at queue depth 16 (qemu-img bench -w, ${requests} requests)`, (uri) => [
      'qemu-img',
      'bench',
      '-w',
      '-f',
      'raw',
      '-s',
      '4096',
      '-d',
      '16',
      '-c',
      String(requests),
      uri,
    ]),
    ...fioWorkloads(quick, make),
  ];
  return [...workloads.slice(0, -1), { ...(workloads.at(-1) as Workload), teardown: stop }];
}

/** fio's nbd engine: 4 KiB random reads, writes and a 70/30 mix at queue depth 32. */
function fioWorkloads(quick: boolean, make: (id: string, title: string, args: (uri: string) => string[], bytes?: number) => Workload) {
  const ioBytes = (quick ? 64 : 256) * MIB;
  const fio = (mode: string[]) => (uri: string) => [
    'fio',
    '--name=bench',
    '--ioengine=nbd',
    `--uri=${uri}`,
    '--bs=4k',
    '--iodepth=32',
    `--io_size=${ioBytes}`,
    '--norandommap',
    '--randrepeat=0',
    '--minimal',
    ...mode,
  ];
  const requests = `${ioBytes / MIB} MiB of 4 KiB requests`;
  return [
    make('nbd-fio-randread', `fio nbd engine: 4 KiB random reads at queue depth 32 (${requests})`, fio(['--rw=randread']), ioBytes),
    make('nbd-fio-randwrite', `fio nbd engine: 4 KiB random writes at queue depth 32 (${requests})`, fio(['--rw=randwrite']), ioBytes),
    make(
      'nbd-fio-randrw',
      `fio nbd engine: 4 KiB random 70% reads / 30% writes at queue depth 32 (${requests})`,
      fio(['--rw=randrw', '--rwmixread=70']),
      ioBytes,
    ),
  ];
}

/** A sparse file of `size` bytes: an empty raw disk. */
async function truncateTo(path: string, size: number): Promise<void> {
  await writeFile(path, '');
  await truncate(path, size);
}

/** A running process's peak resident set (VmHWM) in MiB. */
async function peakRssMiB(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  if (match === null) throw new SbmError('SBM_INTERNAL', `no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}
