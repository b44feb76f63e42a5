// Fuzz property: random damage to small valid VDIs (dynamic, static, and a hand-built diff):
// opening and reading them either works or throws an SbmError with a one-line message, never
// anything else, and always finishes (ava's timeout catches a hang).

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openVdi } from '../../../formats/vdi/open-vdi.js';
import { SbmError } from '../../../lib/errors.js';
import { requireTool, tempDir } from '../../helpers/tools.js';
import { MiB, makeDiff, qemuVdi } from './vdi-kit.js';

async function exercise(t: ExecutionContext, path: string): Promise<boolean> {
  try {
    const image = await openVdi(path);
    try {
      await image.extents(0, image.sizeBytes);
      const chunk = 512 * 1024;
      for (let offset = 0; offset < Math.min(image.sizeBytes, 8 * MiB); offset += chunk)
        await image.read(offset, Math.min(chunk, image.sizeBytes - offset));
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
    return !error.message.includes('\n');
  }
}

const mutation = (limit: number) =>
  fc.array(fc.record({ offset: fc.nat({ max: limit - 1 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 });

for (const kind of ['dynamic', 'static', 'diff'] as const) {
  test(`mutated ${kind} VDIs open or fail with SbmError`, async (t) => {
    await requireTool(t, 'qemu-img');
    const dir = await tempDir(t);
    const base = join(dir, 'base.vdi');
    await qemuVdi(base, '3M', kind === 'static' ? ['static=on'] : [], ['write -P 0x5a 0 64k', 'write -P 0x6b 2M 4k']);
    let source = base;
    if (kind === 'diff') {
      source = join(dir, 'child.vdi');
      await makeDiff(source, base, {
        blocks: new Map<number, Buffer | 'zero'>([
          [1, Buffer.alloc(MiB, 0xab)],
          [2, 'zero'],
        ]),
      });
    }
    const pristine = await readFile(source);
    const target = join(dir, 'mutant.vdi');
    const regions = [1024, pristine.length];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...regions), fc.integer(), async (region, seed) => {
        const edits = fc.sample(mutation(region), { numRuns: 1, seed })[0] ?? [];
        const mutant = Buffer.from(pristine);
        for (const edit of edits) mutant[edit.offset] = edit.value;
        await writeFile(target, mutant);
        return exercise(t, target);
      }),
      { numRuns: 120 },
    );
    t.pass();
  });
}
