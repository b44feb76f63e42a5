// UDIF (.dmg) reading: images built by dmg-kit.ts (from the format description), read through
// the registry and the CLI, and cross-checked byte for byte against dmg2img, an independent reader.

import test from 'ava';
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { SBM_BIN, requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { type PlannedPartition, buildDmg, sampleDisk } from './dmg-kit.js';

const PARTITIONS: readonly PlannedPartition[] = [
  {
    name: 'Protective Master Boot Record (MBR : 0)',
    chunks: [
      { sectors: 1, kind: 'raw' },
      { sectors: 7, kind: 'zero' },
    ],
  },
  {
    name: 'disk image (Apple_HFS : 1)',
    chunks: [
      { sectors: 64, kind: 'zlib' },
      { sectors: 32, kind: 'adc' },
      { sectors: 16, kind: 'ignore' },
      { sectors: 2048, kind: 'zlib' },
      { sectors: 40, kind: 'raw' },
      { sectors: 300, kind: 'adc' },
      { sectors: 200, kind: 'bzip2' },
    ],
  },
];

const SECTORS = 1 + 7 + 64 + 32 + 16 + 2048 + 40 + 300 + 200;

/** The disk sampleDisk makes, with the zero and ignore chunks' sectors zeroed (they store nothing). */
function expectedDisk(): { disk: Buffer; expected: Buffer } {
  const disk = sampleDisk(SECTORS);
  const expected = Buffer.from(disk);
  expected.fill(0, 1 * 512, 8 * 512);
  expected.fill(0, (8 + 64 + 32) * 512, (8 + 64 + 32 + 16) * 512);
  return { disk, expected };
}

test('a UDIF image with raw, zero, ignore, zlib, ADC and bzip2 chunks reads back exactly', async (t) => {
  const dir = await tempDir(t);
  const { disk, expected } = expectedDisk();
  const path = join(dir, 'mixed.dmg');
  await writeFile(path, buildDmg(disk, PARTITIONS));
  const image = await openImage(path);
  t.teardown(() => image.close());
  t.is(image.formatName, 'dmg');
  t.is(image.sizeBytes, SECTORS * 512);
  t.true((await image.read(0, image.sizeBytes)).equals(expected));
  // Unaligned reads across chunk borders.
  t.true((await image.read(511, 70_000)).equals(expected.subarray(511, 70_511)));
  t.deepEqual(await image.extents(0, 8 * 512 + 100), [
    { offset: 0, length: 512, kind: 'data' },
    { offset: 512, length: 7 * 512, kind: 'hole' },
    { offset: 8 * 512, length: 100, kind: 'data' },
  ]);
  const details = await image.details();
  t.deepEqual(details.chunkTypes, { raw: 2, zero: 1, zlib: 2, adc: 2, bzip2: 1, ignore: 1, comment: 2, terminator: 2 });
  t.deepEqual(
    (details.partitions as Array<{ name: string }>).map((part) => part.name),
    PARTITIONS.map((part) => part.name),
  );
  await t.throwsAsync(image.write(0, Buffer.alloc(512)), { code: 'SBM_READ_ONLY' } as never);
});

test('sbm export of a UDIF image matches dmg2img byte for byte; info names its chunks', async (t) => {
  await requireTool(t, 'dmg2img');
  const dir = await tempDir(t);
  const { disk, expected } = expectedDisk();
  const path = join(dir, 'mixed.dmg');
  await writeFile(path, buildDmg(disk, PARTITIONS));
  const reference = join(dir, 'dmg2img.img');
  await execa('dmg2img', ['-s', '-i', path, '-o', reference]);
  const ours = join(dir, 'sbm.raw');
  const exported = await runSbm(['export', path, ours, '--format', 'raw']);
  t.is(exported.exitCode, 0, exported.stderr);
  const theirs = await readFile(reference);
  t.true(theirs.equals(expected), 'dmg2img reads the built image as the planned disk');
  t.true((await readFile(ours)).equals(theirs));
  const info = await runSbm(['info', path, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  t.regex(info.stdout, /"adc": 2/);
  t.regex(info.stdout, /Apple_HFS : 1/);
});

test('chunk types without a decoder are refused as SBM_UNSUPPORTED in one line', async (t) => {
  const dir = await tempDir(t);
  const disk = sampleDisk(16);
  const path = join(dir, 'lzfse.dmg');
  const partitions: PlannedPartition[] = [{ name: 'p', chunks: [{ sectors: 16, kind: 'lzfse' }] }];
  await writeFile(path, buildDmg(disk, partitions));
  const info = await runSbm(['info', path]);
  t.is(info.exitCode === 0, false);
  t.regex(info.stderr, /SBM_UNSUPPORTED.*lzfse/);
  t.is(info.stderr.trim().split('\n').length, 1);
});

test('sbm mount --read-only serves a UDIF image over NBD; nbdcopy reads what dmg2img writes', async (t) => {
  await requireTool(t, 'dmg2img');
  await requireTool(t, 'nbdcopy');
  const dir = await tempDir(t);
  const { disk, expected } = expectedDisk();
  const path = join(dir, 'mixed.dmg');
  await writeFile(path, buildDmg(disk, PARTITIONS));
  const socket = join(dir, 'nbd.sock');
  const serving = execa('node', [SBM_BIN, 'mount', path, '--read-only', '--socket', socket, '--json'], { reject: false });
  t.teardown(() => {
    if (serving.exitCode === null) serving.kill('SIGKILL');
  });
  try {
    const report = await new Promise<{ uri: string; readOnly: boolean }>((resolve, reject) => {
      let text = '';
      serving.stdout?.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        try {
          resolve(JSON.parse(text));
        } catch {
          // incomplete so far: keep reading
        }
      });
      void serving.then((result) => reject(new Error(`mount exited: ${String(result.stderr)}`)));
    });
    t.true(report.readOnly);
    const served = join(dir, 'served.raw');
    await execa('nbdcopy', [report.uri, served]);
    const reference = join(dir, 'dmg2img.img');
    await execa('dmg2img', ['-s', '-i', path, '-o', reference]);
    t.true((await readFile(served)).equals(await readFile(reference)));
    t.true((await readFile(served)).equals(expected));
  } finally {
    if (serving.pid !== undefined) process.kill(serving.pid, 'SIGTERM');
    await serving;
  }
});
