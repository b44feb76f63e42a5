// Benchmarks `sbm convert` against `qemu-img convert -O raw` on the same VMDKs (reference
// vmdk-format.md §11): a 1 GiB disk, half allocated in 4 MiB runs of compressible data (a tar
// of /usr, or seeded bytes when /usr is not readable), as monolithicSparse and streamOptimized.
// Prints the median of N runs of each and the ratio. Not a test: timings depend on the machine.
//
//   npx tsc -p . && node dist/scripts/bench-convert-vmdk.js [sizeMiB=1024] [runs=5]

import { execa } from 'execa';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIB = 1024 * 1024;
const SBM_BIN = resolve(fileURLToPath(new URL('..', import.meta.url)), 'cli', 'sbm.js');
const sizeMiB = Number(process.argv[2] ?? 1024);
const runs = Number(process.argv[3] ?? 5);

/** Compressible filler: a tar stream of /usr (what a real disk holds), or a text-like pattern. */
async function filler(bytes: number): Promise<Buffer> {
  const tar = execa('tar', ['cf', '-', '/usr/lib', '/usr/share'], { buffer: false, reject: false, stderr: 'ignore' });
  const chunks: Buffer[] = [];
  let have = 0;
  if (tar.stdout !== null) {
    for await (const chunk of tar.stdout as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= bytes) break;
    }
  }
  tar.kill();
  await tar.catch(() => undefined); // killed on purpose once enough bytes arrived
  const out = Buffer.concat(chunks).subarray(0, bytes);
  if (out.length === bytes) return out;
  const pattern = Buffer.from('sbm benchmark filler line with some words 0123456789\n');
  const filled = Buffer.alloc(bytes);
  for (let at = 0; at < bytes; at += pattern.length) pattern.copy(filled, at);
  return filled;
}

async function makeSource(path: string): Promise<void> {
  const run = 4 * MIB;
  const data = await filler((sizeMiB * MIB) / 2);
  const handle = await open(path, 'w');
  await handle.truncate(sizeMiB * MIB);
  for (let index = 0; index * run * 2 < sizeMiB * MIB; index++) {
    await handle.write(data, index * run, run, index * run * 2);
  }
  await handle.close();
}

async function time(command: string, args: string[], cleanup: () => Promise<void>): Promise<number> {
  await cleanup();
  const started = process.hrtime.bigint();
  await execa(command, args);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sbm-bench-vmdk-'));
  try {
    const raw = join(dir, 'source.raw');
    await makeSource(raw);
    console.log(`disk: ${sizeMiB} MiB virtual, half allocated; ${runs} runs each, median seconds`);
    console.log('subformat          file MiB  qemu-img  sbm convert  sbm/qemu');
    for (const subformat of ['monolithicSparse', 'streamOptimized']) {
      const vmdk = join(dir, `${subformat}.vmdk`);
      await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${subformat}`, raw, vmdk]);
      const { size } = await stat(vmdk);
      const qemuOut = join(dir, 'qemu.raw');
      const sbmOut = join(dir, 'sbm.sparsebundle');
      const qemu: number[] = [];
      const sbm: number[] = [];
      for (let run = 0; run < runs; run++) {
        qemu.push(await time('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', vmdk, qemuOut], () => rm(qemuOut, { force: true })));
        sbm.push(await time('node', [SBM_BIN, 'convert', vmdk, sbmOut, '--no-progress'], () => rm(sbmOut, { recursive: true, force: true })));
      }
      const q = median(qemu);
      const s = median(sbm);
      console.log(`${subformat.padEnd(18)} ${(size / MIB).toFixed(0).padStart(8)}  ${q.toFixed(2).padStart(8)}  ${s.toFixed(2).padStart(11)}  ${(s / q).toFixed(2).padStart(8)}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
