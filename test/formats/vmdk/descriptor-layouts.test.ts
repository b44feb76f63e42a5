// Hand-built file sets qemu-img cannot make: Fusion "-s001" splits of 4192256 sectors with spaces
// in the name, ESXi vmfs descriptors, descriptor quirks (CRLF, key case, charsets, RDONLY, ZERO),
// paths escaping the folder, device-backed and unsupported extent types.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openVmdk } from '../../../formats/vmdk/open-vmdk.js';
import { detectVmdk } from '../../../formats/vmdk/vmdk-format.js';
import { type SbmErrorCode, isSbmError } from '../../../lib/errors.js';
import { requireTool, seededBytes, tempDir } from '../../helpers/tools.js';
import { MiB, kindAt, makeSourceRaw, qemuImg } from './vmdk-test-kit.js';

const descriptorText = (createType: string, extents: string[], extra = ''): string =>
  [
    '# Disk DescriptorFile',
    'version=1',
    'CID=fffffffe',
    'parentCID=ffffffff',
    `createType="${createType}"`,
    extra,
    ...extents,
    'ddb.adapterType = "lsilogic"',
    '',
  ].join('\n');

async function flatFile(path: string, sizeBytes: number, seed: number): Promise<Buffer> {
  const data = seededBytes(sizeBytes, seed);
  await writeFile(path, data);
  return data;
}

async function refuses(t: ExecutionContext, path: string, code: SbmErrorCode, pattern: RegExp): Promise<void> {
  const error = await t.throwsAsync(openVmdk(path));
  t.true(isSbmError(error, code), `expected ${code}, got ${String(error)}`);
  t.regex(String(error?.message), pattern);
}

test('Fusion split: "Virtual Disk-s001.vmdk" extents of 4192256 sectors, boundary inside a band', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const extentBytes = 4192256 * 512;
  for (const [index, seed] of [
    [1, 41],
    [2, 42],
  ] as const) {
    const raw = join(dir, `part${index}.raw`);
    await makeSourceRaw(raw, extentBytes, [
      { offset: 0, length: MiB, seed },
      { offset: extentBytes - MiB, length: MiB, seed: seed + 10 },
    ]);
    await qemuImg(['convert', '-f', 'raw', '-O', 'vmdk', raw, join(dir, `Virtual Disk-s00${index}.vmdk`)]);
    await rm(raw);
  }
  const disk = join(dir, 'Virtual Disk.vmdk');
  await writeFile(
    disk,
    descriptorText('twoGbMaxExtentSparse', ['RW 4192256 SPARSE "Virtual Disk-s001.vmdk"', 'RW 4192256 SPARSE "Virtual Disk-s002.vmdk"']),
  );
  const image = await openVmdk(join(dir, 'Virtual Disk-s002.vmdk'));
  t.teardown(() => image.close());
  t.is(image.path, disk);
  t.is(image.sizeBytes, 2 * extentBytes);
  const across = await image.read(extentBytes - MiB, 2 * MiB);
  t.true(across.subarray(0, MiB).equals(seededBytes(MiB, 51)));
  t.true(across.subarray(MiB).equals(seededBytes(MiB, 42)));
  t.true((await image.read(extentBytes + extentBytes - MiB, MiB)).equals(seededBytes(MiB, 52)));
  // qemu-img 7.2 misreads this hand-written descriptor (it reports 3 extents, 6 GiB), so the oracle
  // is the known data: the extent map must be exactly the four written runs.
  t.deepEqual(await image.extents(0, image.sizeBytes), [
    { offset: 0, length: MiB, kind: 'data' },
    { offset: MiB, length: extentBytes - 2 * MiB, kind: 'hole' },
    { offset: extentBytes - MiB, length: 2 * MiB, kind: 'data' },
    { offset: extentBytes + MiB, length: extentBytes - 2 * MiB, kind: 'hole' },
    { offset: 2 * extentBytes - MiB, length: MiB, kind: 'data' },
  ]);
});

test('ESXi vmfs descriptor with -flat.vmdk, opened through either file', async (t) => {
  const dir = await tempDir(t);
  const data = await flatFile(join(dir, 'esx-flat.vmdk'), 2 * MiB, 7);
  const disk = join(dir, 'esx.vmdk');
  await writeFile(disk, descriptorText('vmfs', ['RW 4096 VMFS "esx-flat.vmdk"'], 'ddb.thinProvisioned = "1"'));
  t.true(detectVmdk({ path: join(dir, 'esx-flat.vmdk'), isDirectory: false, head: data.subarray(0, 4096), sizeBytes: data.length }));
  for (const name of ['esx.vmdk', 'esx-flat.vmdk']) {
    const image = await openVmdk(join(dir, name));
    t.true((await image.read(0, image.sizeBytes)).equals(data));
    t.is((await image.details()).createType, 'vmfs');
    await image.close();
  }
});

test('descriptor quirks: CreateType= case, windows-1252 name with spaces, RDONLY, ZERO, NUL padding', async (t) => {
  const dir = await tempDir(t);
  const name = 'Disque caf\u00e9 1-flat.vmdk';
  const data = await flatFile(join(dir, name), MiB, 8);
  const text = [
    '# Disk Descriptor File',
    'version=1',
    'encoding="windows-1252"',
    'CID=0000abcd',
    'parentCID=ffffffff',
    'CreateType="monolithicFlat"',
    `RDONLY 2048 FLAT "${name}" 0`,
    'NOACCESS 1024 ZERO',
    'ddb.unknownKey = "kept"',
  ].join('\r\n');
  const disk = join(dir, 'quirks.vmdk');
  await writeFile(disk, Buffer.concat([Buffer.from(text, 'latin1'), Buffer.alloc(300)]));
  const image = await openVmdk(disk);
  t.teardown(() => image.close());
  t.is(image.sizeBytes, MiB + 512 * 1024);
  t.true((await image.read(0, MiB)).equals(data));
  t.true((await image.read(MiB, 512 * 1024)).equals(Buffer.alloc(512 * 1024)));
  t.is(await kindAt(image, MiB + 4096), 'hole');
  t.is(((await image.details()).extents as unknown[]).length, 2);
});

test('extents outside the folder are refused unless allowOutside', async (t) => {
  const dir = await tempDir(t);
  const inner = join(dir, 'inner');
  await mkdir(inner);
  await flatFile(join(dir, 'outside-flat.vmdk'), MiB, 9);
  const up = join(inner, 'up.vmdk');
  await writeFile(up, descriptorText('monolithicFlat', ['RW 2048 FLAT "../outside-flat.vmdk" 0']));
  await refuses(t, up, 'SBM_PATH_OUTSIDE', /up\.vmdk: extent "\.\.\/outside-flat\.vmdk" lies outside the descriptor's folder/);
  const absolute = join(inner, 'abs.vmdk');
  await writeFile(absolute, descriptorText('monolithicFlat', [`RW 2048 FLAT "${join(dir, 'outside-flat.vmdk')}" 0`]));
  await refuses(t, absolute, 'SBM_PATH_OUTSIDE', /abs\.vmdk: extent .* lies outside/);
  const allowed = await openVmdk(absolute, { allowOutside: true });
  t.true((await allowed.read(0, 16)).equals(seededBytes(16, 9)));
  await allowed.close();
  const viaLink = join(inner, 'link.vmdk');
  await execa('ln', ['-s', join(dir, 'outside-flat.vmdk'), join(inner, 'link-flat.vmdk')]);
  await writeFile(viaLink, descriptorText('monolithicFlat', ['RW 2048 FLAT "link-flat.vmdk" 0']));
  await refuses(t, viaLink, 'SBM_PATH_OUTSIDE', /lies outside/);
});

test('refused: device-backed disks, vmfsSparse/seSparse, non-UTF-8 text, unknown encodings', async (t) => {
  const dir = await tempDir(t);
  const write = async (file: string, text: string | Buffer): Promise<string> => {
    await writeFile(join(dir, file), text);
    return join(dir, file);
  };
  await refuses(
    t,
    await write('dev.vmdk', descriptorText('fullDevice', ['RW 2048 FLAT "/dev/sda" 0'])),
    'SBM_UNSUPPORTED',
    /device-backed/,
  );
  await refuses(
    t,
    await write('rdm.vmdk', descriptorText('vmfsRawDeviceMap', ['RW 2048 VMFSRDM "rdm-rdm.vmdk"'])),
    'SBM_UNSUPPORTED',
    /device-backed/,
  );
  await refuses(
    t,
    await write('rdm2.vmdk', descriptorText('custom', ['RW 2048 VMFSRDM "x-rdm.vmdk"'])),
    'SBM_UNSUPPORTED',
    /device-backed/,
  );
  await write('snap-delta.vmdk', seededBytes(4096, 1));
  await refuses(
    t,
    await write('snap.vmdk', descriptorText('vmfsSparse', ['RW 2048 VMFSSPARSE "snap-delta.vmdk"'])),
    'SBM_UNSUPPORTED',
    /unsupported subformat/,
  );
  await refuses(
    t,
    await write('se.vmdk', descriptorText('seSparse', ['RW 2048 SESPARSE "se-sesparse.vmdk"'])),
    'SBM_UNSUPPORTED',
    /unsupported subformat/,
  );
  const bad = Buffer.concat([
    Buffer.from(descriptorText('monolithicFlat', ['RW 2048 FLAT "x'])),
    Buffer.from([0xff, 0xfe]),
    Buffer.from('-flat.vmdk" 0\n'),
  ]);
  await refuses(t, await write('bad.vmdk', bad), 'SBM_CORRUPT', /bad\.vmdk: descriptor is not valid UTF-8 text/);
  await refuses(
    t,
    await write('enc.vmdk', descriptorText('monolithicFlat', ['RW 2048 FLAT "x-flat.vmdk" 0'], 'encoding="klingon-8"')),
    'SBM_UNSUPPORTED',
    /encoding "klingon-8"/,
  );
  await refuses(t, await write('none.vmdk', descriptorText('monolithicFlat', [])), 'SBM_CORRUPT', /lists no extents/);
  await refuses(
    t,
    await write('num.vmdk', descriptorText('monolithicFlat', ['RW 99999999999999999 FLAT "x-flat.vmdk" 0'])),
    'SBM_CORRUPT',
    /bad extent line/,
  );
});

test('an extent file whose descriptor is gone is refused with a clear message', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  await qemuImg(['create', '-q', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', join(dir, 'split.vmdk'), '10M']);
  await rename(join(dir, 'split.vmdk'), join(dir, 'split.txt'));
  await refuses(t, join(dir, 'split-s001.vmdk'), 'SBM_UNSUPPORTED', /one extent of a multi-extent VMDK .* open the descriptor/);
});
