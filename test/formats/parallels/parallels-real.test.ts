// Parallels Desktop disks as Parallels wrote them (test/fixtures/parallels/, from dissect.hypervisor's
// test data; sources in test/fixtures/README.md): a plain disk, an expanding one and a disk split
// into six expanding pieces, each a .hdd folder with its DiskDescriptor.xml. qemu-img reads the
// .hds images but no descriptor, so each disk is checked against qemu-img's reading of its pieces.

import test from 'ava';
import { execa } from 'execa';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { REPO_ROOT, requireTool, runSbm, tempDir } from '../../helpers/tools.js';

const MiB = 1024 * 1024;

/** A fixture's .hdd folder in `dir`, its .hds images gunzipped; returns the folder and its images in name order. */
async function unpacked(dir: string, name: string): Promise<{ folder: string; images: string[] }> {
  const folder = join(dir, name);
  await cp(join(REPO_ROOT, 'test', 'fixtures', 'parallels', name), folder, { recursive: true });
  const images: string[] = [];
  for (const entry of (await readdir(folder)).sort()) {
    if (!entry.endsWith('.hds.gz')) continue;
    const image = join(folder, entry.slice(0, -'.gz'.length));
    await writeFile(image, gunzipSync(await readFile(join(folder, entry))));
    images.push(image);
  }
  return { folder, images };
}

/** sbm's reading of a disk: convert, then export as a raw file. */
async function sbmRaw(dir: string, disk: string): Promise<string> {
  const bundle = join(dir, 'disk.sparsebundle');
  const converted = await runSbm(['convert', disk, bundle, '--force', '--no-progress']);
  if (converted.exitCode !== 0) throw new Error(converted.stderr);
  const raw = join(dir, 'sbm.raw');
  const exported = await runSbm(['export', bundle, raw, '--format', 'raw', '--force']);
  if (exported.exitCode !== 0) throw new Error(exported.stderr);
  return raw;
}

test('a plain and an expanding Parallels disk read as their .hds images do in qemu-img', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const plain = await unpacked(dir, 'plain.hdd');
  const expanding = await unpacked(dir, 'expanding.hdd');

  const plainBytes = await readFile(await sbmRaw(dir, plain.folder));
  t.true(plainBytes.equals(await readFile(plain.images[0] as string)), 'a plain image is the disk itself');

  const info = await runSbm(['info', expanding.folder, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  t.regex(info.stdout, /WithoutFreeSpace/);
  const expandingBytes = await readFile(await sbmRaw(dir, expanding.folder));
  const qemuRaw = join(dir, 'qemu.raw');
  await execa('qemu-img', ['convert', '-f', 'parallels', '-O', 'raw', expanding.images[0] as string, qemuRaw]);
  t.true(expandingBytes.equals(await readFile(qemuRaw)), 'byte for byte what qemu-img reads');
  t.true(expandingBytes.equals(plainBytes), 'both hold the same disk');
  // The disk Parallels was given: 1 MiB cluster i filled with byte i; cluster 0 never written.
  t.is(expandingBytes.length, 100 * MiB);
  t.true(expandingBytes.subarray(0, MiB).every((byte) => byte === 0));
  for (const cluster of [1, 2, 50, 99]) t.is(expandingBytes[cluster * MiB + 12345], cluster);
});

test('a split Parallels disk reads as the six pieces qemu-img reads, one after another', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const split = await unpacked(dir, 'split.hdd');
  t.is(split.images.length, 6);
  const raw = await sbmRaw(dir, split.folder);
  let offset = 0;
  for (const image of split.images) {
    const { stdout } = await execa('qemu-img', ['info', '--output=json', '-f', 'parallels', image]);
    const size = (JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'];
    const compared = await execa(
      'qemu-img',
      [
        'compare',
        '--image-opts',
        `driver=raw,offset=${offset},size=${size},file.driver=file,file.filename=${raw}`,
        `driver=parallels,file.driver=file,file.filename=${image}`,
      ],
      { reject: false },
    );
    t.is(compared.exitCode, 0, `${image} at ${offset}: ${compared.stdout}${compared.stderr}`);
    offset += size;
  }
  t.is(offset, 10 * 1024 * MiB, 'the pieces make the 10 GiB disk');
  const { stdout } = await execa('qemu-img', ['info', '--output=json', '-f', 'raw', raw]);
  t.is((JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'], offset);
});
