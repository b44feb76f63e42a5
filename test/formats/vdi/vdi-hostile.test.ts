// Damaged and hostile VDIs: each fails at open with one line naming the file and the problem
// (SBM_CORRUPT, or SBM_UNSUPPORTED for versions and types sbm does not read), never a stack
// trace or a hang.

import test, { type ExecutionContext } from 'ava';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { openVdi } from '../../../formats/vdi/open-vdi.js';
import { SbmError } from '../../../lib/errors.js';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { MiB, at, header, qemuVdi } from './vdi-kit.js';

async function sample(t: ExecutionContext): Promise<{ disk: string; file: Buffer }> {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const disk = join(dir, 'disk.vdi');
  await qemuVdi(disk, '4M', [], ['write -P 0x33 2M 4k', 'write -P 0x44 0 512']);
  return { disk, file: await readFile(disk) };
}

async function refused(
  t: ExecutionContext,
  path: string,
  code: SbmError['code'],
  pattern: RegExp,
  open: (path: string) => Promise<{ close(): Promise<void> }> = openImage,
): Promise<void> {
  const error = await t.throwsAsync(
    (async () => {
      const image = await open(path);
      await image.close();
    })(),
    { instanceOf: SbmError },
  );
  t.is(error?.code, code, error?.message);
  t.regex(error?.message ?? '', pattern);
  t.false((error?.message ?? '').includes('\n'));
}

const CASES: ReadonlyArray<{ name: string; code: SbmError['code']; pattern: RegExp; edit: (file: Buffer) => void }> = [
  {
    name: 'version 1.2',
    code: 'SBM_UNSUPPORTED',
    pattern: /header version 1\.2 is not supported \(only 1\.1\)/,
    edit: (file) => file.writeUInt32LE(0x00010002, 0x44),
  },
  {
    name: 'legacy version 0.2',
    code: 'SBM_UNSUPPORTED',
    pattern: /header version 0\.2 is not supported/,
    edit: (file) => file.writeUInt32LE(0x00000002, 0x44),
  },
  {
    name: 'header size 100',
    code: 'SBM_CORRUPT',
    pattern: /header size 100 is smaller/,
    edit: (file) => file.writeUInt32LE(100, at('cbHeader')),
  },
  {
    name: 'image type 5',
    code: 'SBM_CORRUPT',
    pattern: /image type 5 is not one of/,
    edit: (file) => file.writeUInt32LE(5, at('imageType')),
  },
  { name: 'undo image (type 3)', code: 'SBM_UNSUPPORTED', pattern: /undo images/, edit: (file) => file.writeUInt32LE(3, at('imageType')) },
  {
    name: 'block size 3 MiB',
    code: 'SBM_CORRUPT',
    pattern: /block size 3145728 is not a power of two/,
    edit: (file) => file.writeUInt32LE(3 * MiB, at('cbBlock')),
  },
  {
    name: 'block extra 100',
    code: 'SBM_CORRUPT',
    pattern: /block extra size 100/,
    edit: (file) => file.writeUInt32LE(100, at('cbBlockExtra')),
  },
  {
    name: 'blocks too few for the disk',
    code: 'SBM_CORRUPT',
    pattern: /has 2 blocks .* too few/,
    edit: (file) => file.writeUInt32LE(2, at('cBlocks')),
  },
  {
    name: 'allocated count above the block count',
    code: 'SBM_CORRUPT',
    pattern: /claims 9 allocated blocks of 4/,
    edit: (file) => file.writeUInt32LE(9, at('cBlocksAllocated')),
  },
  {
    name: 'map past the end of the file',
    code: 'SBM_CORRUPT',
    pattern: /block map at \d+ .* past the end/,
    edit: (file) => file.writeUInt32LE(0x7fffffff, at('offBlocks')),
  },
  {
    name: 'data offset inside the map',
    code: 'SBM_CORRUPT',
    pattern: /data offset 512 lies inside the block map/,
    edit: (file) => file.writeUInt32LE(512, at('offData')),
  },
  {
    name: 'map entry past the block count',
    code: 'SBM_CORRUPT',
    pattern: /block 3 points at data block 4/,
    edit: (file) => file.writeUInt32LE(4, header(file).offBlocks + 12),
  },
  {
    name: 'two entries on one data block',
    code: 'SBM_CORRUPT',
    pattern: /data block \d+ is used by two blocks \(the second is block 3\)/,
    edit: (file) => file.writeUInt32LE(file.readUInt32LE(header(file).offBlocks), header(file).offBlocks + 12),
  },
  {
    name: 'a huge disk size',
    code: 'SBM_CORRUPT',
    pattern: /larger than 2\^53/,
    edit: (file) => file.writeBigUInt64LE(0xffffffffffffffffn, at('cbDisk')),
  },
];

for (const { name, code, pattern, edit } of CASES) {
  test(`${name}: ${code}`, async (t) => {
    const { disk, file } = await sample(t);
    edit(file);
    await writeFile(disk, file);
    await refused(t, disk, code, pattern);
  });
}

test('a block past the end of the file (truncated image): SBM_CORRUPT at open, one CLI line', async (t) => {
  const { disk, file } = await sample(t);
  await truncate(disk, file.length - 4096);
  await refused(t, disk, 'SBM_CORRUPT', /ends at \d+, past the end of the file .*truncated/);
  const cli = await runSbm(['convert', disk, join(disk, '..', 'out.sparsebundle'), '--no-progress']);
  t.is(cli.exitCode, 4);
  t.regex(cli.stderr, /^sbm: SBM_CORRUPT: .*disk\.vdi: VDI block \d+ \(data block \d+\) ends at \d+, past the end of the file[^\n]*\n$/);
});

test('a bad signature, opened as VDI: SBM_CORRUPT; a file shorter than the header too', async (t) => {
  const { disk, file } = await sample(t);
  file.writeUInt32LE(0x12345678, 0x40);
  await writeFile(disk, file);
  await refused(t, disk, 'SBM_CORRUPT', /not a VDI pre-header/, openVdi);
  file.writeUInt32LE(0xbeda107f, 0x40);
  await writeFile(disk, file.subarray(0, 300));
  await refused(t, disk, 'SBM_CORRUPT', /past the end of the file|truncated/, openVdi);
});

test('a differencing image with a zero parent UUID: SBM_CORRUPT, never matched to a file', async (t) => {
  const { disk, file } = await sample(t);
  file.writeUInt32LE(4, at('imageType'));
  await writeFile(disk, file);
  await refused(t, disk, 'SBM_CORRUPT', /differencing VDI has no parent UUID/);
});

test('a disk size not a multiple of 512 is rounded down with the warning SBM_VDI_SIZE_ROUNDED', async (t) => {
  const { disk, file } = await sample(t);
  file.writeBigUInt64LE(BigInt(3 * MiB + 700), at('cbDisk'));
  await writeFile(disk, file);
  const warnings: string[] = [];
  const image = await openImage(disk, { onWarning: (warning) => warnings.push(warning.code) });
  try {
    t.is(image.sizeBytes, 3 * MiB + 512);
  } finally {
    await image.close();
  }
  t.deepEqual(warnings, ['SBM_VDI_SIZE_ROUNDED']);
});
