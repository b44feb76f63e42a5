// Benchmarks sbm's NBD server against qemu-nbd and nbdkit file on the same data (reference
// nbd-protocol.md §8): nbdcopy sequential read (server -> null:) and write (file -> server), and
// `qemu-img bench` 4 KiB reads at queue depth 16. Every server runs as its own process on a Unix
// socket; data lives on tmpfs (/dev/shm) when available. Not a test: prints a table.
//
//   npx tsc -p . && node dist/scripts/bench-nbd.js [sizeMiB=1024] [runs=3]

import { type ResultPromise, execa } from 'execa';
import { randomFillSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { SparseBundle } from '../lib/engine/sparse-bundle.js';

const MIB = 1024 * 1024;
const SBM_BIN = resolve(fileURLToPath(new URL('..', import.meta.url)), 'cli', 'sbm.js');
const sizeMiB = Number(process.argv[2] ?? 1024);
const runs = Number(process.argv[3] ?? 3);

interface Server {
  uri: string;
  stop(): Promise<void>;
}

async function waitFor(path: string): Promise<void> {
  for (let tries = 0; tries < 200 && !existsSync(path); tries++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(path)) throw new Error(`${path} never appeared`);
}

function stopper(child: ResultPromise): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    await child;
  };
}

async function sbm(bundle: string): Promise<Server> {
  const child = execa('node', [SBM_BIN, 'mount', bundle, '--json'], { reject: false, env: { UV_THREADPOOL_SIZE: '16' } });
  let out = '';
  const uri = await new Promise<string>((ok, fail) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      try {
        ok((JSON.parse(out) as { uri: string }).uri);
      } catch {
        // not complete yet
      }
    });
    void child.then((result) => fail(new Error(`sbm mount exited: ${String(result.stderr)}`)));
  });
  return { uri, stop: stopper(child) };
}

async function qemuNbd(file: string, sock: string): Promise<Server> {
  const child = execa('qemu-nbd', ['-f', 'raw', '-t', '-k', sock, '--cache=writeback', file], { reject: false });
  await waitFor(sock);
  return { uri: `nbd+unix:///?socket=${sock}`, stop: stopper(child) };
}

async function nbdkitFile(file: string, sock: string): Promise<Server> {
  const child = execa('nbdkit', ['-f', '-U', sock, 'file', file], { reject: false });
  await waitFor(sock);
  return { uri: `nbd+unix:///?socket=${sock}`, stop: stopper(child) };
}

async function timed(command: string, args: string[]): Promise<number> {
  const start = process.hrtime.bigint();
  await execa(command, args);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function measure(server: Server, sourceFile: string): Promise<Record<string, string>> {
  const gib = sizeMiB / 1024;
  const read: number[] = [];
  const write: number[] = [];
  const iops: number[] = [];
  for (let run = 0; run < runs; run++) {
    write.push(gib / (await timed('nbdcopy', [sourceFile, server.uri])));
    read.push(gib / (await timed('nbdcopy', [server.uri, 'null:'])));
    const count = 200_000;
    iops.push(count / (await timed('qemu-img', ['bench', '-f', 'raw', '-s', '4096', '-d', '16', '-c', String(count), server.uri])));
  }
  return {
    'seq read GiB/s': median(read).toFixed(2),
    'seq write GiB/s': median(write).toFixed(2),
    '4K read QD16 IOPS': Math.round(median(iops)).toString(),
  };
}

async function main(): Promise<void> {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = await mkdtemp(join(base, 'sbm-bench-'));
  try {
    const source = join(dir, 'source.raw');
    const handle = await open(source, 'w');
    const chunk = Buffer.alloc(MIB);
    for (let index = 0; index < sizeMiB; index++) await handle.write(randomFillSync(chunk), 0, MIB, index * MIB);
    await handle.close();
    const target = join(dir, 'target.raw');
    await execa('cp', [source, target]);
    const bundlePath = join(dir, 'bench.sparsebundle');
    await (await SparseBundle.create(bundlePath, { sizeBytes: sizeMiB * MIB })).close();

    const rows: Array<[string, Record<string, string>]> = [];
    const candidates: Array<[string, () => Promise<Server>]> = [
      ['sbm mount (bundle)', () => sbm(bundlePath)],
      ['qemu-nbd -f raw', () => qemuNbd(target, join(dir, 'qemu.sock'))],
      ['nbdkit file', () => nbdkitFile(target, join(dir, 'nbdkit.sock'))],
    ];
    for (const [name, start] of candidates) {
      const server = await start();
      try {
        rows.push([name, await measure(server, source)]);
      } finally {
        await server.stop();
      }
    }
    const cpu = (await readFile('/proc/cpuinfo', 'utf8').catch(() => '')).match(/^processor/gm)?.length ?? '?';
    console.log(`# ${sizeMiB} MiB on ${base} (${(await stat(source)).size} B raw, ${cpu} CPUs), median of ${runs}`);
    const columns = Object.keys(rows[0]?.[1] ?? {});
    console.log(`| server | ${columns.join(' | ')} |`);
    console.log(`|---|${columns.map(() => '---').join('|')}|`);
    for (const [name, values] of rows) console.log(`| ${name} | ${columns.map((column) => values[column]).join(' | ')} |`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
