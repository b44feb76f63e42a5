// Differencing VDIs, hand-built (vdi-kit.ts makeDiff: qemu can neither create nor open them).
// The expected disk is computed independently: the parent's bytes from qemu-img convert with the
// child's blocks laid over them (a free entry keeps the parent's block, a zero entry zeros it).

import test, { type ExecutionContext } from 'ava';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openImage } from '../../../formats/index.js';
import { SbmError } from '../../../lib/errors.js';
import { WarningList } from '../../../lib/warnings.js';
import { requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { MiB, at, makeDiff, qemuRaw, qemuVdi } from './vdi-kit.js';

interface Chain {
  readonly dir: string;
  readonly base: string;
  readonly child: string;
  readonly expected: Buffer;
}

/** base.vdi: 4 MiB of 0x11 (all blocks allocated). child.vdi: block 1 = 0xab, block 2 zero, blocks 0 and 3 free. */
async function makeChain(t: ExecutionContext): Promise<Chain> {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const base = join(dir, 'base.vdi');
  await qemuVdi(base, '4M', [], ['write -P 0x11 0 4M']);
  const expected = await qemuRaw(base, join(dir, 'base.raw'));
  const child = join(dir, 'child.vdi');
  await makeDiff(child, base, {
    blocks: new Map<number, Buffer | 'zero'>([
      [1, Buffer.alloc(MiB, 0xab)],
      [2, 'zero'],
    ]),
  });
  expected.fill(0xab, MiB, 2 * MiB);
  expected.fill(0, 2 * MiB, 3 * MiB);
  return { dir, base, child, expected };
}

async function readAll(path: string): Promise<{ bytes: Buffer; warnings: string[] }> {
  const warnings = new WarningList();
  const image = await openImage(path, { onWarning: warnings.sink });
  try {
    return { bytes: await image.read(0, image.sizeBytes), warnings: warnings.items.map((warning) => warning.code) };
  } finally {
    await image.close();
  }
}

test('a diff reads free blocks from its parent (found by UUID in its folder), zero blocks as zeros', async (t) => {
  const chain = await makeChain(t);
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
  t.is(info.chain.length, 1);
});

test('a diff of a diff: three links', async (t) => {
  const chain = await makeChain(t);
  const grandchild = join(chain.dir, 'grandchild.vdi');
  await makeDiff(grandchild, chain.child, { blocks: new Map([[3, Buffer.alloc(MiB, 0xcd)]]) });
  const expected = Buffer.from(chain.expected).fill(0xcd, 3 * MiB, 4 * MiB);
  t.true((await readAll(grandchild)).bytes.equals(expected));
});

test('no .vdi in the folder holds the parent UUID: SBM_NOT_FOUND in one line', async (t) => {
  const chain = await makeChain(t);
  const file = await readFile(chain.base);
  file.fill(0x42, at('uuidCreate'), at('uuidCreate') + 16);
  await writeFile(chain.base, file);
  const cli = await runSbm(['info', chain.child]);
  t.is(cli.exitCode, 1);
  t.regex(cli.stderr, /^sbm: SBM_NOT_FOUND: .*child\.vdi: parent VDI \{[0-9a-f-]{36}\} not found among the \.vdi files of [^\n]*\n$/);
});

test('the parent changed after the snapshot: warning SBM_VDI_PARENT_MODIFIED; two copies: SBM_VDI_PARENT_AMBIGUOUS', async (t) => {
  const chain = await makeChain(t);
  await makeDiff(chain.child, chain.base, {
    blocks: new Map<number, Buffer | 'zero'>([
      [1, Buffer.alloc(MiB, 0xab)],
      [2, 'zero'],
    ]),
    parentModify: Buffer.alloc(16, 9),
  });
  const modified = await readAll(chain.child);
  t.true(modified.bytes.equals(chain.expected));
  t.deepEqual(modified.warnings, ['SBM_VDI_PARENT_MODIFIED']);
  await copyFile(chain.base, join(chain.dir, 'another-base.vdi'));
  t.deepEqual((await readAll(chain.child)).warnings, ['SBM_VDI_PARENT_AMBIGUOUS', 'SBM_VDI_PARENT_MODIFIED']);
});

test('two diffs naming each other: SBM_CORRUPT (loop), no hang', async (t) => {
  const chain = await makeChain(t);
  // a.vdi's parent is b.vdi and b.vdi's parent is a.vdi.
  const a = join(chain.dir, 'a.vdi');
  const b = join(chain.dir, 'b.vdi');
  const uuidA = await makeDiff(a, chain.base, { blocks: new Map() });
  await makeDiff(b, a, { blocks: new Map() });
  const fileA = await readFile(a);
  const fileB = await readFile(b);
  fileB.copy(fileA, at('uuidLinkage'), at('uuidCreate'), at('uuidCreate') + 16);
  await writeFile(a, fileA);
  t.true(fileB.subarray(at('uuidLinkage'), at('uuidLinkage') + 16).equals(uuidA));
  const error = await t.throwsAsync(readAll(a), { instanceOf: SbmError });
  t.is(error?.code, 'SBM_CORRUPT');
  t.regex(error?.message ?? '', /loops back/);
});
