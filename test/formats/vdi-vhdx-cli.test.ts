// sbm export and sbm restore write VDI and VHDX through the exporter registry: chosen by --format,
// --to or the output's name; the result equals the bundle for qemu-img compare and passes
// qemu-img check; an existing output needs --force (and is then replaced whole); an output inside
// the input is refused with nothing written.

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { requireTool, runSbm, seededBytes, tempDir } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const FORMATS = ['vdi', 'vhdx'] as const;
const MAGIC: Record<(typeof FORMATS)[number], [number, string]> = { vdi: [0x40, '7f10dabe'], vhdx: [0, '7668647866696c65'] };

/** A 70 MiB bundle: data at the start, across 1 MiB and 32 MiB boundaries, written zeros, data at the end. */
async function makeBundle(path: string, seed: number): Promise<void> {
  const bundle = await SparseBundle.create(path, { sizeBytes: 70 * MiB, bandSizeBytes: MiB });
  try {
    await bundle.write(0, seededBytes(200 * 1024, seed));
    await bundle.write(32 * MiB - 8192, seededBytes(16384, seed + 1));
    await bundle.write(10 * MiB, Buffer.alloc(2 * MiB));
    await bundle.write(70 * MiB - 4096, seededBytes(4096, seed + 2));
  } finally {
    await bundle.close();
  }
}

async function assertImageOf(t: ExecutionContext, rawPath: string, path: string, format: string): Promise<void> {
  const head = await readFile(path);
  const [at, magic] = MAGIC[format as (typeof FORMATS)[number]];
  t.is(head.subarray(at, at + magic.length / 2).toString('hex'), magic, `${path} is a ${format}`);
  const check = await execa('qemu-img', ['check', '-f', format, path], { reject: false });
  t.is(check.exitCode, 0, check.stdout + check.stderr);
  const compare = await execa('qemu-img', ['compare', '-f', 'raw', '-F', format, rawPath, path], { reject: false });
  t.is(compare.exitCode, 0, compare.stdout + compare.stderr);
}

async function setUp(t: ExecutionContext): Promise<{ dir: string; bundle: string; raw: string }> {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const bundle = join(dir, 'vm.sparsebundle');
  await makeBundle(bundle, 1);
  const raw = join(dir, 'vm.raw');
  const exported = await runSbm(['export', bundle, raw, '--no-progress']);
  t.is(exported.exitCode, 0, exported.stderr);
  return { dir, bundle, raw };
}

for (const format of FORMATS) {
  test(`export writes ${format} by --format and by the .${format} name; --force rules`, async (t) => {
    const { dir, bundle, raw } = await setUp(t);
    const named = join(dir, `disk.${format}`);
    const byName = await runSbm(['export', bundle, named, '--json', '--no-progress']);
    t.is(byName.exitCode, 0, byName.stderr);
    t.like(JSON.parse(byName.stdout), { format, sizeBytes: 70 * MiB });
    await assertImageOf(t, raw, named, format);
    const compared = await runSbm(['compare', bundle, named]);
    t.is(compared.exitCode, 0, `sbm compare: ${compared.stdout}${compared.stderr}`);

    const plain = join(dir, 'disk.img-for-hypervisor');
    const byFlag = await runSbm(['export', bundle, plain, '--format', format, '--no-progress']);
    t.is(byFlag.exitCode, 0, byFlag.stderr);
    await assertImageOf(t, raw, plain, format);

    // Exists without --force: refused, the old file untouched.
    const before = await readFile(named);
    const refused = await runSbm(['export', bundle, named, '--no-progress']);
    t.is(refused.exitCode, 1);
    t.regex(refused.stderr, /^sbm: SBM_EXISTS: .*--force/);
    t.true((await readFile(named)).equals(before));

    // With --force, another bundle replaces it whole.
    const other = join(dir, 'other.sparsebundle');
    await makeBundle(other, 50);
    const otherRaw = join(dir, 'other.raw');
    t.is((await runSbm(['export', other, otherRaw, '--no-progress'])).exitCode, 0);
    const forced = await runSbm(['export', other, named, '--force', '--no-progress']);
    t.is(forced.exitCode, 0, forced.stderr);
    await assertImageOf(t, otherRaw, named, format);
    t.false(
      (await readdir(dir)).some((name) => name.includes('sbm-partial') || name.includes('sbm-replaced')),
      'no staging left',
    );
  });

  test(`export into the bundle itself as ${format} is refused, nothing written`, async (t) => {
    const { bundle } = await setUp(t);
    const before = (await readdir(bundle, { recursive: true })).sort();
    const inside = await runSbm(['export', bundle, join(bundle, `inside.${format}`), '--no-progress']);
    t.not(inside.exitCode, 0);
    t.regex(inside.stderr, /^sbm: SBM_OUTPUT_INSIDE_INPUT: /);
    t.deepEqual((await readdir(bundle, { recursive: true })).sort(), before);
  });

  test(`restore --to ${format} and to a .${format} target from a backup set`, async (t) => {
    const { dir, bundle, raw } = await setUp(t);
    const backedUp = await runSbm(['backup', bundle, join(dir, 'dest'), '--json']);
    t.is(backedUp.exitCode, 0, backedUp.stderr);
    const backup = JSON.parse(backedUp.stdout).path as string;

    const named = join(dir, `restored.${format}`);
    const byName = await runSbm(['restore', backup, named, '--json']);
    t.is(byName.exitCode, 0, byName.stderr);
    t.like(JSON.parse(byName.stdout), { format });
    await assertImageOf(t, raw, named, format);

    const plain = join(dir, 'restored-disk');
    const byTo = await runSbm(['restore', backup, plain, '--to', format]);
    t.is(byTo.exitCode, 0, byTo.stderr);
    t.true((await lstat(plain)).isFile(), 'an image file, not a bundle folder');
    await assertImageOf(t, raw, plain, format);

    const before = await readFile(plain);
    const again = await runSbm(['restore', backup, plain, '--to', format]);
    t.is(again.exitCode, 1);
    t.regex(again.stderr, /SBM_EXISTS/);
    t.true((await readFile(plain)).equals(before), 'untouched without --force');
    const forced = await runSbm(['restore', backup, plain, '--to', format, '--force']);
    t.is(forced.exitCode, 0, forced.stderr);
    await assertImageOf(t, raw, plain, format);

    const inside = await runSbm(['restore', backup, join(backup, `x.${format}`)]);
    t.regex(inside.stderr, /^sbm: SBM_OUTPUT_INSIDE_INPUT: /);
    t.false(
      await lstat(join(backup, `x.${format}`)).then(
        () => true,
        () => false,
      ),
    );
  });
}
