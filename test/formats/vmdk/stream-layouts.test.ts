// The streamOptimized layouts seen in the wild, built by patching qemu-img's and sbm's output:
// qemu (tables in front, 0x30003, no EOS), open-vmdk (tables in front, 0x30001, EOS), VDF5 /
// VMDKstream (footer, GT/GD markers, "# Disk Descriptor File" title, RDONLY extent with another
// name), Xen Orchestra (footer, 0x30003, metadata markers with numSectors 0).

import test, { type ExecutionContext } from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  GRAIN_MARKER_EOS,
  GRAIN_MARKER_FOOTER,
  GRAIN_MARKER_GRAIN_DIRECTORY,
  GRAIN_MARKER_GRAIN_TABLE,
} from '../../../formats/vmdk/constants.js';
import { openVmdk } from '../../../formats/vmdk/open-vmdk.js';
import { vmdkExporter } from '../../../formats/vmdk/vmdk-exporter.js';
import { RawImage } from '../../../formats/raw/raw-image.js';
import { requireTool, tempDir } from '../../helpers/tools.js';
import { MiB, compareAllBytes, makeSourceRaw, qemuCompare, qemuImg } from './vmdk-test-kit.js';

async function source(t: ExecutionContext): Promise<{ dir: string; raw: string }> {
  const dir = await tempDir(t);
  const raw = join(dir, 'source.raw');
  await makeSourceRaw(raw, 40 * MiB + 1536, [
    { offset: 0, length: 200 * 1024, seed: 81 },
    { offset: 33 * MiB, length: MiB, seed: 82 },
    { offset: 40 * MiB, length: 1536, seed: 83 },
  ]);
  return { dir, raw };
}

async function footerStream(dir: string, raw: string): Promise<Buffer> {
  const device = await RawImage.open(raw);
  const out = join(dir, 'footer.vmdk');
  await vmdkExporter.export(device, out, { subformat: 'streamOptimized' });
  await device.close();
  return readFile(out);
}

async function expectSame(t: ExecutionContext, path: string, raw: string, oracle = true): Promise<void> {
  const image = await openVmdk(path);
  t.teardown(() => image.close());
  await compareAllBytes(t, image, raw);
  if (oracle) await qemuCompare(t, raw, 'raw', path, 'vmdk');
}

test('open-vmdk layout: tables in front, flags 0x30001, EOS marker', async (t) => {
  await requireTool(t, 'qemu-img');
  const { dir, raw } = await source(t);
  const qemu = join(dir, 'qemu.vmdk');
  await qemuImg(['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, qemu]);
  const bytes = await readFile(qemu);
  bytes.writeUInt32LE(0x30001, 8);
  const eos = Buffer.alloc(512);
  eos.writeUInt32LE(GRAIN_MARKER_EOS, 12);
  const path = join(dir, 'openvmdk.vmdk');
  await writeFile(path, Buffer.concat([bytes.subarray(0, Math.ceil(bytes.length / 512) * 512), eos]));
  await expectSame(t, path, raw);
});

test('VDF5 / VMDKstream layout: footer, markers, other title and extent name', async (t) => {
  await requireTool(t, 'qemu-img');
  const { dir, raw } = await source(t);
  const bytes = await footerStream(dir, raw);
  const descriptor = bytes.subarray(512, 512 * 21);
  const text = descriptor
    .toString('latin1')
    .replace('# Disk DescriptorFile', '# Disk Descriptor File')
    .replace(/RW (\d+) SPARSE "[^"]*"/, 'RDONLY $1 SPARSE "call-me-stream.vmdk"');
  descriptor.fill(0);
  descriptor.write(text, 'latin1');
  const path = join(dir, 'vmdkstream.vmdk');
  await writeFile(path, bytes);
  await expectSame(t, path, raw, false); // qemu 7.2 aborts on RDONLY extents
});

test('Xen Orchestra layout: flags 0x30003, metadata markers with numSectors 0', async (t) => {
  await requireTool(t, 'qemu-img');
  const { dir, raw } = await source(t);
  const bytes = await footerStream(dir, raw);
  bytes.writeUInt32LE(0x30003, 8);
  bytes.writeUInt32LE(0x30003, bytes.length - 1024 + 8);
  let patched = 0;
  for (let at = 128 * 512; at + 512 <= bytes.length; at += 512) {
    const size = bytes.readUInt32LE(at + 8);
    const type = bytes.readUInt32LE(at + 12);
    if (
      size === 0 &&
      [GRAIN_MARKER_GRAIN_TABLE, GRAIN_MARKER_GRAIN_DIRECTORY, GRAIN_MARKER_FOOTER].includes(type) &&
      bytes.readBigUInt64LE(at) > 0n
    ) {
      bytes.writeBigUInt64LE(0n, at);
      patched++;
    }
  }
  t.true(patched >= 3);
  const path = join(dir, 'xo.vmdk');
  await writeFile(path, bytes);
  await expectSame(t, path, raw);
});
