// Every VHDX variant qemu-img can write, with data written by qemu-io (patterns, zero writes,
// holes), converted by `sbm convert` and exported back to raw: equal byte for byte to
// `qemu-img convert -O raw`. `sbm info` reports what the file declares.
// Needs `npm run build` first (runs dist/cli/sbm.js).

import test from 'ava';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openVhdx } from '../../../formats/vhdx/open-vhdx.js';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { qemuImg, qemuVhdx } from './vhdx-kit.js';

// Data across a block boundary (8 MiB), a zero write, an untouched block (16-24 MiB), and
// sectors in the partial last block.
const WRITES = ['write -P 0xab 1M 64k', 'write -P 0x11 7M 2M', 'write -z 12M 1M', 'write -P 0x5c 26M 512', 'write -P 0x7e 26700k 4k'];

interface Variant {
  readonly name: string;
  readonly options: string[];
  readonly subformat: string;
  readonly blockSize: number;
  readonly states: string[];
}

const MiB = 1024 * 1024;
const VARIANTS: Variant[] = [
  { name: 'dynamic (ZERO entries)', options: [], subformat: 'dynamic', blockSize: 8 * MiB, states: ['fullyPresent', 'zero'] },
  {
    name: 'dynamic, block_state_zero=off (NOT_PRESENT entries)',
    options: ['block_state_zero=off'],
    subformat: 'dynamic',
    blockSize: 8 * MiB,
    states: ['fullyPresent', 'notPresent'],
  },
  { name: 'fixed', options: ['subformat=fixed'], subformat: 'fixed', blockSize: 8 * MiB, states: ['fullyPresent', 'zero'] },
  {
    name: 'fixed, block_state_zero=off (every block present)',
    options: ['subformat=fixed', 'block_state_zero=off'],
    subformat: 'fixed',
    blockSize: 8 * MiB,
    states: ['fullyPresent'],
  },
  { name: 'block_size=8M', options: ['block_size=8M'], subformat: 'dynamic', blockSize: 8 * MiB, states: ['fullyPresent', 'zero'] },
  { name: 'block_size=1M', options: ['block_size=1M'], subformat: 'dynamic', blockSize: MiB, states: ['fullyPresent', 'zero'] },
  {
    name: 'block_size=32M (one partial block)',
    options: ['block_size=32M'],
    subformat: 'dynamic',
    blockSize: 32 * MiB,
    states: ['fullyPresent'],
  },
  { name: 'log_size=4M', options: ['log_size=4M'], subformat: 'dynamic', blockSize: 8 * MiB, states: ['fullyPresent', 'zero'] },
];

for (const variant of VARIANTS) {
  test(`${variant.name}: sbm convert equals qemu-img convert -O raw byte for byte`, async (t) => {
    await requireTool(t, 'qemu-img');
    await requireTool(t, 'qemu-io');
    const dir = await tempDir(t);
    const disk = join(dir, 'disk.vhdx');
    // 27 MiB: the last block is partial with every block size above 1 MiB.
    await qemuVhdx(disk, '27M', variant.options, WRITES);
    const reference = join(dir, 'reference.raw');
    await qemuImg(['convert', '-f', 'vhdx', '-O', 'raw', disk, reference]);
    const bundle = join(dir, 'disk.sparsebundle');
    const convert = await runSbm(['convert', disk, bundle, '--json', '--no-progress']);
    t.is(convert.exitCode, 0, convert.stderr);
    t.is(JSON.parse(convert.stdout).format, 'vhdx');
    const back = join(dir, 'back.raw');
    const exported = await runSbm(['export', bundle, back, '--format', 'raw']);
    t.is(exported.exitCode, 0, exported.stderr);
    const [want, got] = await Promise.all([readFile(reference), readFile(back)]);
    t.is(got.length, want.length);
    t.true(got.equals(want), 'bytes equal qemu-img convert -O raw');
    const info = await runSbm(['info', disk, '--json']);
    t.is(info.exitCode, 0, info.stderr);
    const facts = JSON.parse(info.stdout);
    t.is(facts.subformat, variant.subformat);
    t.is(facts.blockSize, variant.blockSize);
    t.is(facts.logicalSectorSize, 512);
    t.false(facts.hasParent);
    t.deepEqual(Object.keys(facts.blockStates).sort(), [...variant.states].sort());
  });
}

test('a 4 GiB + 16 MiB disk: data past the first sector bitmap entry (chunk ratio 4096) reads right', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const disk = join(dir, 'big.vhdx');
  await qemuVhdx(
    disk,
    '4112M',
    ['block_size=1M'],
    ['write -P 0x01 0 4k', 'write -P 0x02 4G 4k', 'write -P 0x03 4105M 64k', 'write -P 0x04 4111M 1M'],
  );
  const bundle = join(dir, 'big.sparsebundle');
  const convert = await runSbm(['convert', disk, bundle, '--no-progress']);
  t.is(convert.exitCode, 0, convert.stderr);
  const back = join(dir, 'back.raw');
  const exported = await runSbm(['export', bundle, back, '--format', 'raw']);
  t.is(exported.exitCode, 0, exported.stderr);
  const same = await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'vhdx', back, disk], { reject: false });
  t.is(same.exitCode, 0, `${same.stdout}${same.stderr}`);
  const info = JSON.parse((await runSbm(['info', disk, '--json'])).stdout);
  t.is(info.chunkRatio, 4096);
  t.is(info.blockStates.fullyPresent, 4);
});

test(
  'a fresh VHDX converts to a bundle with no bands; ' + 'a size-0 one is described, and convert refuses it as for any empty disk',
  async (t) => {
    await requireTool(t, 'qemu-img');
    const dir = await tempDir(t);
    const disk = join(dir, 'fresh.vhdx');
    await qemuVhdx(disk, '16M', [], []);
    const info = await runSbm(['info', disk, '--json']);
    t.is(info.exitCode, 0, info.stderr);
    t.is(JSON.parse(info.stdout).allocatedBytes, 0);
    const bundle = join(dir, 'fresh.sparsebundle');
    const convert = await runSbm(['convert', disk, bundle, '--json', '--no-progress']);
    t.is(convert.exitCode, 0, convert.stderr);
    t.is(JSON.parse(convert.stdout).bandsWritten, 0);
    const empty = join(dir, 'empty.vhdx');
    await qemuVhdx(empty, '0', [], []);
    const emptyInfo = await runSbm(['info', empty, '--json']);
    t.is(emptyInfo.exitCode, 0, emptyInfo.stderr);
    t.is(JSON.parse(emptyInfo.stdout).sizeBytes, 0);
    const refused = await runSbm(['convert', empty, join(dir, 'empty.sparsebundle'), '--no-progress']);
    t.is(refused.exitCode, 4);
    t.regex(refused.stderr, /^sbm: SBM_BAD_SIZE: /);
  },
);

test('a 2 TiB disk with 1 MiB blocks: a 16 MiB BAT, past the 8 MiB cache, reads and maps right', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const disk = join(dir, 'wide.vhdx');
  const TiB = 1024 * 1024 * MiB;
  await qemuVhdx(disk, '2T', ['block_size=1M'], ['write -P 0x41 1T 64k', 'write -P 0x42 2047G 1M', `write -P 0x43 ${2 * TiB - 4096} 4k`]);
  const image = await openVhdx(disk);
  try {
    t.is(image.sizeBytes, 2 * TiB);
    const extents = await image.extents(0, image.sizeBytes);
    t.deepEqual(
      extents.filter((extent) => extent.kind === 'data'),
      [
        { offset: TiB, length: MiB, kind: 'data' },
        { offset: 2047 * 1024 * MiB, length: MiB, kind: 'data' },
        { offset: 2 * TiB - MiB, length: MiB, kind: 'data' },
      ],
    );
    t.is(
      extents.reduce((sum, extent) => sum + extent.length, 0),
      2 * TiB,
    );
    t.true((await image.read(TiB, 64 * 1024)).equals(Buffer.alloc(64 * 1024, 0x41)));
    t.true((await image.read(TiB + 64 * 1024, 4096)).equals(Buffer.alloc(4096)));
    t.true((await image.read(2047 * 1024 * MiB, MiB)).equals(Buffer.alloc(MiB, 0x42)));
    t.true((await image.read(2 * TiB - 8192, 8192)).equals(Buffer.concat([Buffer.alloc(4096), Buffer.alloc(4096, 0x43)])));
  } finally {
    await image.close();
  }
});
