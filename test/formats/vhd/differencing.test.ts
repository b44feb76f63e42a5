// Differencing VHDs, hand-built from qemu dynamic VHDs (see vhd-kit.ts makeDifferencing: qemu
// cannot create them). The expected disk is computed independently: the parent's bytes from
// qemu-img convert, overlaid with the child's own bytes (qemu-img convert of the child before it
// became a differencing disk) where the child's sector bitmaps say the sectors are there.
// Needs `npm run build` first for the CLI cases (runs dist/cli/sbm.js).

import test, { type ExecutionContext } from 'ava';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { SbmError } from '../../../lib/errors.js';
import { WarningList } from '../../../lib/warnings.js';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { MiB, blockStart, makeDifferencing, qemuImg, qemuRaw, qemuVhd, type ParentNaming } from './vhd-kit.js';

interface Chain {
  readonly dir: string;
  readonly child: string;
  readonly parent: string;
  readonly expected: Buffer;
}

/**
 * parent.vhd: 0x11 over [0, 8 MiB). child.vhd: 0xab at [1 MiB, +64 KiB) (block 0) and 0xcd at
 * [5 MiB, +4 KiB) (block 2); qemu sets every bitmap bit of the blocks it allocates, so blocks 0
 * and 2 come wholly from the child, except the first 32 sectors of [1 MiB, ...) whose bits are
 * cleared here: those read from the parent.
 */
async function makeChain(t: ExecutionContext, naming: (dir: string) => ParentNaming, parentDir?: string): Promise<Chain> {
  const dir = await tempDir(t);
  const home = parentDir === undefined ? dir : join(dir, parentDir);
  await mkdir(home, { recursive: true });
  const parent = join(home, 'parent.vhd');
  await qemuVhd(parent, '8M', [], ['write -P 0x11 0 8M']);
  const child = join(dir, 'child.vhd');
  await qemuVhd(child, '8M', [], ['write -P 0xab 1M 64k', 'write -P 0xcd 5M 4k']);
  const parentRaw = await qemuRaw(parent, join(dir, 'parent.raw'));
  const childRaw = await qemuRaw(child, join(dir, 'child.raw'));
  const file = await readFile(child);
  const bitmapAt = blockStart(file, 0);
  // Sectors 2048..2079 of block 0 = bits of bytes 256..259.
  file.fill(0, bitmapAt + 256, bitmapAt + 260);
  await writeFile(child, file);
  await makeDifferencing(child, parent, naming(dir));
  const expected = Buffer.from(parentRaw);
  childRaw.copy(expected, 0, 0, 2 * MiB);
  parentRaw.copy(expected, MiB, MiB, MiB + 32 * 512);
  childRaw.copy(expected, 4 * MiB, 4 * MiB, 6 * MiB);
  return { dir, child, parent, expected };
}

async function readAll(path: string, options: { allowOutside?: boolean } = {}): Promise<{ bytes: Buffer; warnings: string[] }> {
  const warnings = new WarningList();
  const image = await openImage(path, { onWarning: warnings.sink, ...options });
  try {
    return { bytes: await image.read(0, image.sizeBytes), warnings: warnings.items.map((warning) => warning.code) };
  } finally {
    await image.close();
  }
}

test('W2ru locator: the child reads over its parent, bitmap bit by bit; qemu-img accepts the file', async (t) => {
  await requireTool(t, 'qemu-img');
  const chain = await makeChain(t, () => ({ w2ru: '.\\parent.vhd', w2ku: 'C:\\VMs\\missing.vhd', unicodeName: 'parent.vhd' }));
  // qemu 7.2 opens a type-4 VHD as a dynamic disk without parent: the structures are well formed.
  await qemuImg(['convert', '-f', 'vpc', '-O', 'raw', chain.child, join(chain.dir, 'check.raw')]);
  const { bytes, warnings } = await readAll(chain.child);
  t.true(bytes.equals(chain.expected));
  t.deepEqual(warnings, []);
  const bundle = join(chain.dir, 'child.sparsebundle');
  const convert = await runSbm(['convert', chain.child, bundle, '--no-progress']);
  t.is(convert.exitCode, 0, convert.stderr);
  const back = join(chain.dir, 'back.raw');
  t.is((await runSbm(['export', bundle, back, '--format', 'raw'])).exitCode, 0);
  t.true((await readFile(back)).equals(chain.expected), 'convert flattens the chain');
  const info = JSON.parse((await runSbm(['info', chain.child, '--json'])).stdout);
  t.is(info.subformat, 'differencing');
  t.is(info.parentFormat, 'vhd');
});

test('W2ku: a Windows absolute path is looked for by its file name beside the child', async (t) => {
  await requireTool(t, 'qemu-img');
  const chain = await makeChain(t, () => ({ w2ku: 'D:\\Hyper-V\\Disks\\parent.vhd' }));
  t.true((await readAll(chain.child)).bytes.equals(chain.expected));
});

test('the header parent name is the last resort, after locators naming missing files', async (t) => {
  await requireTool(t, 'qemu-img');
  const chain = await makeChain(t, () => ({ w2ru: '.\\gone.vhd', w2ku: 'C:\\gone.vhd', unicodeName: 'parent.vhd' }));
  t.true((await readAll(chain.child)).bytes.equals(chain.expected));
});

test('a parent whose unique id differs: warning SBM_VHD_PARENT_MISMATCH, still read', async (t) => {
  await requireTool(t, 'qemu-img');
  const chain = await makeChain(t, () => ({ w2ru: '.\\parent.vhd', parentId: Buffer.alloc(16, 7) }));
  const { bytes, warnings } = await readAll(chain.child);
  t.true(bytes.equals(chain.expected));
  t.deepEqual(warnings, ['SBM_VHD_PARENT_MISMATCH']);
  const strict = await runSbm(['info', chain.child, '--strict']);
  t.not(strict.exitCode, 0);
  t.regex(strict.stderr, /SBM_STRICT: SBM_VHD_PARENT_MISMATCH/);
});

test('a parent outside the child folder is refused unless allowOutside', async (t) => {
  await requireTool(t, 'qemu-img');
  const chain = await makeChain(t, () => ({ w2ru: '..\\elsewhere\\parent.vhd' }), 'elsewhere');
  // The child sits in its own folder; the parent in a sibling one.
  const childDir = join(chain.dir, 'kid');
  await mkdir(childDir);
  const child = join(childDir, 'child.vhd');
  await rename(chain.child, child);
  const error = await t.throwsAsync(readAll(child), { instanceOf: SbmError });
  t.is(error?.code, 'SBM_PATH_OUTSIDE');
  t.true((await readAll(child, { allowOutside: true })).bytes.equals(chain.expected));
  const cli = await runSbm(['info', child]);
  t.is(cli.exitCode, 4);
  t.regex(
    cli.stderr,
    /^sbm: SBM_PATH_OUTSIDE: .*child\.vhd: parent "\.\.\\elsewhere\\parent\.vhd" \(W2ru\) lies outside the image's folder[^\n]*\n$/,
  );
});

test('a missing parent: SBM_NOT_FOUND naming what was tried, in one line', async (t) => {
  await requireTool(t, 'qemu-img');
  const chain = await makeChain(t, () => ({ w2ru: '.\\parent.vhd', unicodeName: 'parent.vhd' }));
  await rename(chain.parent, join(chain.dir, 'moved.vhd'));
  const cli = await runSbm(['info', chain.child]);
  t.is(cli.exitCode, 1);
  t.regex(
    cli.stderr,
    /^sbm: SBM_NOT_FOUND: .*child\.vhd: parent VHD not found \(tried W2ru "\.\\parent\.vhd", parent name "parent\.vhd"\)\n$/,
  );
});

test('a child that names itself as parent: SBM_CORRUPT (loop), no hang', async (t) => {
  await requireTool(t, 'qemu-img');
  const chain = await makeChain(t, () => ({ w2ru: '.\\child.vhd' }));
  const error = await t.throwsAsync(readAll(chain.child), { instanceOf: SbmError });
  t.is(error?.code, 'SBM_CORRUPT');
  t.regex(error?.message ?? '', /loops back/);
});

test('a raw parent: any format sbm reads may be the parent', async (t) => {
  await requireTool(t, 'qemu-img');
  const chain = await makeChain(t, () => ({ w2ru: '.\\parent.raw' }));
  const { bytes } = await readAll(chain.child);
  t.true(bytes.equals(chain.expected));
});

test('a loop through another format (VHD -> qcow2 -> the same VHD) is SBM_CORRUPT, no hang', async (t) => {
  await requireTool(t, 'qemu-img');
  const chain = await makeChain(t, () => ({ w2ru: '.\\middle.qcow2' }));
  // The qcow2 is made over the real parent, then its backing name is pointed at the child.
  await qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'parent.vhd', '-F', 'vpc', join(chain.dir, 'middle.qcow2')]);
  await qemuImg(['rebase', '-u', '-b', 'child.vhd', '-F', 'vpc', join(chain.dir, 'middle.qcow2')]);
  const error = await t.throwsAsync(readAll(chain.child), { instanceOf: SbmError });
  t.is(error?.code, 'SBM_CORRUPT');
  t.regex(error?.message ?? '', /loops back/);
});

test('a qcow2 parent: the chain reads through it to its own VHD backing file', async (t) => {
  await requireTool(t, 'qemu-img');
  const chain = await makeChain(t, () => ({ w2ru: '.\\middle.qcow2' }));
  await qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'parent.vhd', '-F', 'vpc', join(chain.dir, 'middle.qcow2')]);
  t.true((await readAll(chain.child)).bytes.equals(chain.expected));
});
