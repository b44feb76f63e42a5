// Parallels disks read by sbm against qemu-img: single expanding images (both magics), disk
// folders with a snapshot chain (qemu reads the top .hds over an explicit backing chain), split
// disks (qemu reads each piece), plain roots, .pvm machines with several disks, and the refusals
// (missing image, a file outside the folder, a DTD, encryption) as one line each.
// Needs `npm run build` first (the CLI tests run dist/cli/sbm.js).

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { WarningList } from '../../../lib/warnings.js';
import { SBM_BIN, requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { KiB, MiB, TOP, ZERO, chainSpec, descriptorXml, oldMagicImage, qemuHds, qemuRead, writeDescriptor } from './parallels-kit.js';

const BASE = '{b3c2a1d0-7e6f-4a5b-8c9d-0e1f2a3b4c5d}';

async function readAll(path: string, options: { disk?: number } = {}): Promise<{ bytes: Buffer; warnings: string[] }> {
  const warnings = new WarningList();
  const image = await openImage(path, { onWarning: warnings.sink, ...options });
  try {
    return { bytes: await image.read(0, image.sizeBytes), warnings: warnings.items.map((warning) => warning.code) };
  } finally {
    await image.close();
  }
}

/** convert, then export raw: the bundle's bytes. */
async function throughBundle(t: ExecutionContext, dir: string, input: string, extra: string[] = []): Promise<Buffer> {
  const bundle = join(dir, `b${Math.random().toString(36).slice(2)}.sparsebundle`);
  const convert = await runSbm(['convert', input, bundle, '--no-progress', ...extra]);
  t.is(convert.exitCode, 0, convert.stderr);
  const raw = `${bundle}.raw`;
  t.is((await runSbm(['export', bundle, raw, '--format', 'raw'])).exitCode, 0);
  return readFile(raw);
}

/** A two-layer disk folder: base.hds (0x11 everywhere written) under top.hds (0xab over part of it). */
async function makeChainFolder(t: ExecutionContext): Promise<{ dir: string; folder: string; expected: Buffer }> {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const folder = join(dir, 'harddisk.hdd');
  await mkdir(folder);
  const base = join(folder, `harddisk.hdd.0.${BASE}.hds`);
  const top = join(folder, `harddisk.hdd.0.${TOP}.hds`);
  await qemuHds(base, '4M', ['write -P 0x11 0 1M', 'write -P 0x12 3M 64k']);
  await qemuHds(top, '4M', ['write -P 0xab 512k 1M', 'write -P 0xcd 3M 4k']);
  await writeDescriptor(folder, {
    diskSectors: 8192,
    storages: [
      {
        start: 0,
        end: 8192,
        images: [
          { guid: BASE, file: `harddisk.hdd.0.${BASE}.hds` },
          { guid: TOP, file: `harddisk.hdd.0.${TOP}.hds` },
        ],
      },
    ],
    shots: [
      [BASE, ZERO],
      [TOP, BASE],
    ],
  });
  const expected = await qemuRead(chainSpec(top, base), join(dir, 'expected.raw'));
  return { dir, folder, expected };
}

test('a qemu-img expanding image (WithouFreSpacExt) reads as qemu-img reads it, through convert too', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const path = join(dir, 'disk.hds');
  // 10 MiB + 3 sectors: the last cluster is partial.
  await qemuHds(path, `${10 * MiB + 1536}`, [
    'write -P 0x11 0 64k',
    'write -P 0x22 3M 4k',
    'write -P 0x33 9M 1M',
    'write -P 0x44 10M 1536',
  ]);
  const expected = await qemuRead(path, join(dir, 'expected.raw'), 'parallels');
  const { bytes, warnings } = await readAll(path);
  t.true(bytes.equals(expected));
  t.deepEqual(warnings, []);
  t.true((await throughBundle(t, dir, path)).equals(expected));
  const image = await openImage(path);
  try {
    const extents = await image.extents(0, image.sizeBytes);
    t.deepEqual(extents[0], { offset: 0, length: 64 * KiB, kind: 'data' });
    // 0..64k, the 3M cluster, and 9M to the end (the partial last cluster joins the 9M write).
    t.is(extents.filter((extent) => extent.kind === 'data').length, 3);
    t.deepEqual(extents[extents.length - 1], { offset: 9 * MiB, length: MiB + 1536, kind: 'data' });
  } finally {
    await image.close();
  }
  const info = JSON.parse((await runSbm(['info', path, '--json'])).stdout);
  t.is(info.format, 'parallels');
  t.is(info.sizeBytes, 10 * MiB + 1536);
  t.is(info.clusterSizeBytes, 64 * KiB);
  t.false(info.inUse);
  t.is(info.storages[0].layers[0].magic, 'WithouFreSpacExt');
  t.is(info.storages[0].layers[0].allocatedClusters, 1 + 1 + 16 + 1);
});

test('an old-magic image (WithoutFreeSpace, sector offsets) reads as qemu-img reads it', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const path = join(dir, 'old.hdd');
  await writeFile(path, oldMagicImage());
  const expected = await qemuRead(path, join(dir, 'expected.raw'), 'parallels');
  t.is(expected.length, 252 * 512);
  t.true(expected.subarray(0, 63 * 512).every((byte) => byte === 0x11));
  t.true((await readAll(path)).bytes.equals(expected));
});

test('a disk folder reads the current snapshot over its parent, as qemu reads the top .hds with a backing chain', async (t) => {
  const { dir, folder, expected } = await makeChainFolder(t);
  t.true((await readAll(folder)).bytes.equals(expected));
  t.true((await throughBundle(t, dir, folder)).equals(expected));
  const info = JSON.parse((await runSbm(['info', folder, '--json'])).stdout);
  t.deepEqual(info.snapshotChain, [TOP, BASE]);
  t.is(info.storages[0].layers.length, 2);
  t.is(info.clusterSizeBytes, 64 * KiB);
  const text = await runSbm(['info', folder]);
  t.regex(text.stdout, /snapshot chain:/);
});

test('TopGUID names the active layer: the predefined top GUID is then an ordinary (older) layer', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const folder = join(dir, 'disk.hdd');
  await mkdir(folder);
  const newest = '{11111111-2222-3333-4444-555555555555}';
  await qemuHds(join(folder, 'a.hds'), '2M', ['write -P 0x01 0 2M']);
  await qemuHds(join(folder, 'b.hds'), '2M', ['write -P 0x02 0 64k']);
  await writeDescriptor(folder, {
    diskSectors: 4096,
    storages: [
      {
        start: 0,
        end: 4096,
        images: [
          { guid: TOP, file: 'a.hds' },
          { guid: newest, file: 'b.hds' },
        ],
      },
    ],
    shots: [
      [TOP, ZERO],
      [newest, TOP],
    ],
    topGuid: newest,
  });
  const expected = await qemuRead(chainSpec(join(folder, 'b.hds'), join(folder, 'a.hds')), join(dir, 'e.raw'));
  t.true((await readAll(folder)).bytes.equals(expected));
});

test('a split disk reads its storages end to end in Start order (listed out of order)', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const folder = join(dir, 'split.hdd');
  await mkdir(folder);
  await qemuHds(join(folder, 'split.hdd.0.hds'), '3M', ['write -P 0x01 0 64k', 'write -P 0x0f 3008k 64k']);
  await qemuHds(join(folder, 'split.hdd.1.hds'), '1M', ['write -P 0x02 0 4k', 'write -P 0x03 960k 64k']);
  await writeDescriptor(folder, {
    diskSectors: 8192,
    storages: [
      { start: 6144, end: 8192, images: [{ guid: TOP, file: 'split.hdd.1.hds' }] },
      { start: 0, end: 6144, images: [{ guid: TOP, file: 'split.hdd.0.hds' }] },
    ],
    shots: [[TOP, ZERO]],
  });
  const expected = Buffer.concat([
    await qemuRead(join(folder, 'split.hdd.0.hds'), join(dir, '0.raw'), 'parallels'),
    await qemuRead(join(folder, 'split.hdd.1.hds'), join(dir, '1.raw'), 'parallels'),
  ]);
  const { bytes } = await readAll(folder);
  t.is(bytes.length, 4 * MiB);
  t.true(bytes.equals(expected));
  t.true((await throughBundle(t, dir, folder)).equals(expected));
  t.true(JSON.parse((await runSbm(['info', folder, '--json'])).stdout).split);
});

test('a plain root under an expanding top: the plain file is raw bytes', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const folder = join(dir, 'plain.hdd');
  await mkdir(folder);
  const root = Buffer.alloc(2 * MiB, 0x5a);
  await writeFile(join(folder, 'root.hds'), root);
  await qemuHds(join(folder, 'top.hds'), '2M', ['write -P 0x77 1M 64k']);
  await writeDescriptor(folder, {
    diskSectors: 4096,
    storages: [
      {
        start: 0,
        end: 4096,
        images: [
          { guid: BASE, file: 'root.hds', type: 'Plain' },
          { guid: TOP, file: 'top.hds' },
        ],
      },
    ],
    shots: [
      [BASE, ZERO],
      [TOP, BASE],
    ],
  });
  const expected = Buffer.from(root).fill(0x77, MiB, MiB + 64 * KiB);
  t.true((await readAll(folder)).bytes.equals(expected));
});

test('a .pvm machine: info lists its disks, convert takes the boot disk (hdd0) or --disk N', async (t) => {
  const { dir, folder, expected } = await makeChainFolder(t);
  const pvm = join(dir, 'Ubuntu.pvm');
  await mkdir(pvm);
  await rename(folder, join(pvm, 'harddisk.hdd'));
  const second = join(pvm, 'data.hdd');
  await mkdir(second);
  await qemuHds(join(second, 'data.hds'), '1M', ['write -P 0x66 0 1M']);
  await writeDescriptor(second, {
    diskSectors: 2048,
    storages: [{ start: 0, end: 2048, images: [{ guid: TOP, file: 'data.hds' }] }],
    shots: [[TOP, ZERO]],
  });
  await writeFile(
    join(pvm, 'config.pvs'),
    `<?xml version="1.0" encoding="UTF-8"?>
<ParallelsVirtualMachine schemaVersion="1.0">
  <Hardware>
    <Hdd id="1" dyn_lists=""><Index>1</Index><SystemName>data.hdd</SystemName></Hdd>
    <Hdd id="0" dyn_lists=""><Index>0</Index><SystemName>harddisk.hdd</SystemName></Hdd>
  </Hardware>
</ParallelsVirtualMachine>
`,
  );
  t.true((await readAll(pvm)).bytes.equals(expected));
  t.true((await readAll(pvm, { disk: 1 })).bytes.equals(Buffer.alloc(MiB, 0x66)));
  t.true((await throughBundle(t, dir, pvm, ['--disk', '1'])).equals(Buffer.alloc(MiB, 0x66)));
  const info = JSON.parse((await runSbm(['info', pvm, '--json'])).stdout);
  t.is(info.disk, 0);
  t.deepEqual(info.disks, [
    { index: 0, name: 'harddisk.hdd', sizeBytes: 4 * MiB },
    { index: 1, name: 'data.hdd', sizeBytes: MiB },
  ]);
  const missing = await runSbm(['convert', pvm, join(dir, 'x.sparsebundle'), '--disk', '7']);
  t.is(missing.exitCode, 2);
  t.is(missing.stderr, `sbm: SBM_USAGE: ${pvm}: no disk 7 (disks: 0, 1)\n`);
  const single = await runSbm(['info', join(pvm, 'data.hdd', 'data.hds'), '--disk', '0']);
  t.is(single.exitCode, 2);
  t.regex(single.stderr, /^sbm: SBM_USAGE: --disk picks one disk of a \.pvm .* is one disk\n$/);
});

test('a running VM\'s image (in_use "Ynot") reads with SBM_PARALLELS_IN_USE; info says in use; --strict refuses', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const path = join(dir, 'busy.hds');
  await qemuHds(path, '1M', ['write -P 0x42 0 64k']);
  const file = await readFile(path);
  file.writeUInt32LE(0x746f6e59, 44);
  await writeFile(path, file);
  const { bytes, warnings } = await readAll(path);
  t.true(bytes.subarray(0, 64 * KiB).every((byte) => byte === 0x42));
  t.deepEqual(warnings, ['SBM_PARALLELS_IN_USE']);
  const info = JSON.parse((await runSbm(['info', path, '--json'])).stdout);
  t.true(info.inUse);
  t.is(info.storages[0].layers[0].inUse, 'in use (not closed cleanly)');
  const strict = await runSbm(['convert', path, join(dir, 'o.sparsebundle'), '--strict']);
  t.is(strict.exitCode, 4);
  t.regex(strict.stderr, /^sbm: SBM_STRICT: SBM_PARALLELS_IN_USE: /);
});

/** Runs info on `folder` and asserts one line with this code and text. */
async function assertRefusal(t: ExecutionContext, folder: string, code: string, pattern: RegExp, exitCode = 4): Promise<void> {
  for (const command of ['info', 'convert']) {
    const args = command === 'info' ? ['info', folder] : ['convert', folder, `${folder}-out.sparsebundle`, '--no-progress'];
    const result = await runSbm(args);
    t.is(result.exitCode, exitCode, `${command}: ${result.stderr}`);
    t.true(result.stderr.startsWith(`sbm: ${code}: `), result.stderr);
    t.regex(result.stderr, pattern);
    t.is(result.stderr.split('\n').length, 2, 'one line');
  }
}

test('refusals: a missing image, a file outside the folder, a DTD, encryption, a broken chain, a bad BAT', async (t) => {
  const { dir, folder } = await makeChainFolder(t);
  const xml = await readFile(join(folder, 'DiskDescriptor.xml'), 'utf8');
  const variant = async (name: string, text: string): Promise<string> => {
    const copy = join(dir, `${name}.hdd`);
    await mkdir(copy);
    for (const guid of [BASE, TOP]) await copyFile(join(folder, `harddisk.hdd.0.${guid}.hds`), join(copy, `harddisk.hdd.0.${guid}.hds`));
    await writeFile(join(copy, 'DiskDescriptor.xml'), text);
    return copy;
  };
  await writeFile(join(dir, 'outside.hds'), '');
  const baseFile = `harddisk.hdd.0.${BASE}.hds`;
  await assertRefusal(t, await variant('missing', xml.replace(baseFile, 'gone.hds')), 'SBM_NOT_FOUND', /image "gone\.hds" not found/, 1);
  await assertRefusal(t, await variant('dotdot', xml.replace(baseFile, '../outside.hds')), 'SBM_PATH_OUTSIDE', /--allow-outside/, 4);
  await assertRefusal(t, await variant('absolute', xml.replace(baseFile, join(dir, 'outside.hds'))), 'SBM_PATH_OUTSIDE', /outside/, 4);
  const dtd = xml.replace("<?xml version='1.0' encoding='UTF-8'?>", '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "aaaa">]>');
  await assertRefusal(t, await variant('dtd', dtd), 'SBM_UNSUPPORTED', /declares a DTD/);
  await assertRefusal(
    t,
    await variant('external', xml.replace('<Name>harddisk</Name>', '<Name>&xxe;</Name>')),
    'SBM_CORRUPT',
    /not well-formed/,
  );
  const encrypted = xml.replace(`<Engine>${ZERO}</Engine>`, '<Engine>{a1b2c3d4-0000-0000-0000-000000000001}</Engine>');
  await assertRefusal(t, await variant('encrypted', encrypted), 'SBM_UNSUPPORTED', /encrypted/);
  await assertRefusal(
    t,
    await variant('loop', xml.replace(`<ParentGUID>${ZERO}</ParentGUID>`, `<ParentGUID>${TOP}</ParentGUID>`)),
    'SBM_CORRUPT',
    /loops/,
  );
  await assertRefusal(t, await variant('notxml', 'not xml at all <'), 'SBM_CORRUPT', /not well-formed|root element/);
  const bad = await variant('badbat', xml);
  const top = join(bad, `harddisk.hdd.0.${TOP}.hds`);
  const file = await readFile(top);
  file.writeUInt32LE(0x7fff_0000, 64);
  await writeFile(top, file);
  await assertRefusal(t, bad, 'SBM_CORRUPT', /BAT entry 0 .* points outside/);
  const allowed = await runSbm(['info', await variant('allowed', xml.replace(baseFile, '../outside.hds')), '--allow-outside']);
  t.is(allowed.exitCode, 4, 'an empty file is no Parallels image, but --allow-outside let sbm open it');
  t.regex(allowed.stderr, /too short for a Parallels image header/);
});

test('a descriptor over the size cap is refused unread', async (t) => {
  const dir = await tempDir(t);
  const folder = join(dir, 'big.hdd');
  await writeDescriptor(folder, `${descriptorXml({ diskSectors: 8, storages: [], shots: [] })}${' '.repeat(2 * MiB)}`);
  await assertRefusal(t, folder, 'SBM_UNSUPPORTED', /more than the 1048576 sbm reads/);
});

test('sbm mount --read-only serves a disk folder over NBD; qemu-img reads it equal to the chain', async (t) => {
  await requireTool(t, 'qemu-nbd');
  const { dir, folder, expected } = await makeChainFolder(t);
  const socket = join(dir, 'nbd.sock');
  const serving = execa('node', [SBM_BIN, 'mount', folder, '--read-only', '--socket', socket, '--json'], { reject: false });
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
    const raw = join(dir, 'expected.raw');
    await writeFile(raw, expected);
    const compare = await execa('qemu-img', ['compare', '-f', 'raw', raw, report.uri], { reject: false });
    t.is(compare.exitCode, 0, compare.stdout + compare.stderr);
  } finally {
    if (serving.pid !== undefined) process.kill(serving.pid, 'SIGTERM');
    await serving;
  }
});
