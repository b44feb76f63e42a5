// Fuzz property: random damage to small valid qcow2 images (header, extensions, L1/L2 tables,
// compressed streams, the whole file) and truncation at any length: opening and reading either
// works or throws an SbmError with a one-line message, never anything else, and always finishes
// (ava's timeout catches a hang).

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openQcow2 } from '../../../formats/qcow2/open-qcow2.js';
import { SbmError } from '../../../lib/errors.js';
import { requireTool, tempDir } from '../../helpers/tools.js';
import { MiB, makeMixedRaw, qemuImg, qemuIo } from './qcow2-test-kit.js';

const noBacking = async (): Promise<never> => {
  throw new SbmError('SBM_NOT_FOUND', 'fuzzed images have no backing file');
};

async function exercise(t: ExecutionContext, path: string): Promise<boolean> {
  try {
    const image = await openQcow2(path, {}, noBacking);
    try {
      await image.extents(0, image.sizeBytes);
      const chunk = 256 * 1024;
      for (let offset = 0; offset < Math.min(image.sizeBytes, 4 * MiB); offset += chunk) {
        await image.read(offset, Math.min(chunk, image.sizeBytes - offset));
      }
      await image.details();
    } finally {
      await image.close();
    }
    return true;
  } catch (error) {
    if (!(error instanceof SbmError) || error.message.includes('\n')) {
      t.log(error);
      return false;
    }
    return true;
  }
}

async function samples(dir: string): Promise<Array<[string, Buffer]>> {
  const source = join(dir, 'source.raw');
  await makeMixedRaw(source, 2 * MiB, 11);
  const out: Array<[string, Buffer]> = [];
  for (const [name, options] of [
    ['deflate', 'cluster_size=4k'],
    ['zstd', 'compression_type=zstd,cluster_size=4k'],
  ] as const) {
    const path = join(dir, `${name}.qcow2`);
    await qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', options, source, path);
    out.push([name, await readFile(path)]);
  }
  const extended = join(dir, 'extl2.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=16k', extended, '2M');
  await qemuIo(extended, 'write -P 0x11 0 5k', 'write -z 40k 2k', 'write -P 0x22 1M 100k');
  await qemuImg('snapshot', '-c', 's1', extended);
  out.push(['extended-l2', await readFile(extended)]);
  return out;
}

const mutation = (limit: number) =>
  fc.array(fc.record({ offset: fc.nat({ max: limit - 1 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 });

test('mutated qcow2 files open or fail with SbmError', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const target = join(dir, 'mutant.qcow2');
  for (const [name, pristine] of await samples(dir)) {
    // Hot spots: the header, the extension area, the metadata clusters, and the whole file.
    const regions = [112, 1024, 64 * 1024, pristine.length];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...regions), fc.integer(), async (region, seed) => {
        const edits = fc.sample(mutation(Math.min(region, pristine.length)), { numRuns: 1, seed })[0] ?? [];
        const mutant = Buffer.from(pristine);
        for (const edit of edits) mutant[edit.offset] = edit.value;
        await writeFile(target, mutant);
        return exercise(t, target);
      }),
      { numRuns: 120 },
    );
    t.log(`${name}: 120 mutants`);
  }
  t.pass();
});

test('qcow2 files with stray u64 entries written into their tables fail cleanly', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const target = join(dir, 'mutant.qcow2');
  for (const [, pristine] of await samples(dir)) {
    const slots = Math.floor(Math.min(pristine.length, 96 * 1024) / 8);
    const values = fc.oneof(
      fc.constantFrom(0n, 1n, 1n << 62n, (1n << 63n) | 0x10000n, 0xffffffffffffffffn, 0x4000000000000000n | (0x3fn << 54n)),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    );
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: slots - 1 }), values, async (slot, value) => {
        const mutant = Buffer.from(pristine);
        mutant.writeBigUInt64BE(value, slot * 8);
        await writeFile(target, mutant);
        return exercise(t, target);
      }),
      { numRuns: 120 },
    );
  }
  t.pass();
});

test('truncated qcow2 files fail cleanly', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const target = join(dir, 'short.qcow2');
  for (const [, pristine] of await samples(dir)) {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: pristine.length - 1 }), async (length) => {
        await writeFile(target, pristine.subarray(0, length));
        return exercise(t, target);
      }),
      { numRuns: 60 },
    );
  }
  t.pass();
});
