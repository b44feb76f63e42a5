// Fuzz property: mutate headers, grain directories/tables, grain data and descriptors of small
// VMDKs; opening and reading them either works or throws an SbmError, never anything else, and
// always finishes (ava's timeout catches a hang).

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openVmdk } from '../../formats/vmdk/open-vmdk.js';
import { vmdkExporter } from '../../formats/vmdk/vmdk-exporter.js';
import { SbmError } from '../../lib/errors.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { seededBytes, tempDir } from '../helpers/tools.js';

const MiB = 1024 * 1024;

async function sample(dir: string, subformat: string): Promise<Buffer> {
  const device = new MemoryDevice(2 * MiB + 1536);
  await device.write(0, seededBytes(100 * 1024, 1));
  await device.write(MiB + 4096, seededBytes(300 * 1024, 2));
  const path = join(dir, `sample-${subformat}.vmdk`);
  await vmdkExporter.export(device, path, { subformat });
  return readFile(path);
}

/** Opens and reads everything; returns normally or with an SbmError; anything else fails. */
async function exercise(t: ExecutionContext, path: string): Promise<boolean> {
  try {
    const image = await openVmdk(path);
    try {
      await image.extents(0, image.sizeBytes);
      const chunk = 512 * 1024;
      for (let offset = 0; offset < Math.min(image.sizeBytes, 8 * MiB); offset += chunk) {
        await image.read(offset, Math.min(chunk, image.sizeBytes - offset));
      }
      await image.details();
    } finally {
      await image.close();
    }
    return true;
  } catch (error) {
    if (!(error instanceof SbmError)) {
      t.log(error);
      return false;
    }
    if (error.message.includes('\n')) return false;
    return true;
  }
}

const mutation = (limit: number) =>
  fc.array(fc.record({ offset: fc.nat({ max: limit - 1 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 });

for (const subformat of ['monolithicSparse', 'streamOptimized']) {
  test(`mutated ${subformat} files open or fail with SbmError`, async (t) => {
    const dir = await tempDir(t);
    const pristine = await sample(dir, subformat);
    const target = join(dir, 'mutant.vmdk');
    // Hot spots: the header, the descriptor, the metadata after it, and the whole file.
    const regions = [512, 11 * 1024, 64 * 1024, pristine.length];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...regions), fc.integer(), async (region, seed) => {
        const edits = fc.sample(mutation(Math.min(region, pristine.length)), { numRuns: 1, seed })[0] ?? [];
        const mutant = Buffer.from(pristine);
        for (const edit of edits) mutant[edit.offset] = edit.value;
        await writeFile(target, mutant);
        return exercise(t, target);
      }),
      { numRuns: 150 },
    );
    t.pass();
  });

  test(`${subformat} with stray u32 pointers written into its tables fails cleanly`, async (t) => {
    const dir = await tempDir(t);
    const pristine = await sample(dir, subformat);
    const target = join(dir, 'mutant.vmdk');
    await fc.assert(
      fc.asyncProperty(
        fc
          .oneof(fc.nat({ max: 16 * 1024 - 1 }), fc.nat({ max: Math.floor(pristine.length / 4) - 1 }))
          .map((slot) => Math.min(slot, Math.floor(pristine.length / 4) - 1)),
        fc.oneof(fc.constantFrom(0, 1, 2, 0xffffffff), fc.nat()),
        async (slot, value) => {
          const mutant = Buffer.from(pristine);
          mutant.writeUInt32LE(value >>> 0, slot * 4);
          await writeFile(target, mutant);
          return exercise(t, target);
        },
      ),
      { numRuns: 150 },
    );
    t.pass();
  });

  test(`truncated ${subformat} files fail cleanly`, async (t) => {
    const dir = await tempDir(t);
    const pristine = await sample(dir, subformat);
    const target = join(dir, 'cut.vmdk');
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: pristine.length - 1 }), async (length) => {
        await writeFile(target, pristine.subarray(0, length));
        return exercise(t, target);
      }),
      { numRuns: 80 },
    );
    t.pass();
  });
}

test('mutated descriptors open or fail with SbmError', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'd-flat.vmdk'), seededBytes(MiB, 4));
  await writeFile(
    join(dir, 'base.vmdk'),
    '# Disk DescriptorFile\nversion=1\nCID=11111111\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 2048 FLAT "d-flat.vmdk" 0\n',
  );
  const text = [
    '# Disk DescriptorFile',
    'version=1',
    'encoding="UTF-8"',
    'CID=2b9e41c0',
    'parentCID=11111111',
    'createType="monolithicFlat"',
    'parentFileNameHint="base.vmdk"',
    'RW 1024 FLAT "d-flat.vmdk" 0',
    'RW 512 ZERO',
    'RDONLY 512 FLAT "d-flat.vmdk" 1024',
    'ddb.adapterType = "lsilogic"',
    '',
  ].join('\n');
  const target = join(dir, 'mutant.vmdk');
  const tokens = [
    '"',
    '=',
    ' ',
    '\n',
    '\r',
    '\0',
    '../',
    '/',
    'SPARSE',
    'VMFS',
    '99999999999999',
    '-1',
    'ffffffff',
    '\u00ff',
    'ZERO',
    'RW ',
  ];
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ at: fc.nat({ max: text.length }), cut: fc.nat({ max: 6 }), insert: fc.constantFrom(...tokens) }), {
        minLength: 1,
        maxLength: 5,
      }),
      async (edits) => {
        let mutant = text;
        for (const edit of edits) mutant = mutant.slice(0, edit.at) + edit.insert + mutant.slice(edit.at + edit.cut);
        await writeFile(target, mutant, 'latin1');
        return exercise(t, target);
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});
