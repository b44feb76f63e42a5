// Fuzz property: random damage to small valid VHDs (dynamic, fixed, differencing): opening and
// reading them either works or throws an SbmError with a one-line message, never anything else,
// and always finishes (ava's timeout catches a hang).

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openVhd } from '../../../formats/vhd/open-vhd.js';
import { SbmError } from '../../../lib/errors.js';
import { requireTool, tempDir } from '../../helpers/tools.js';
import { makeDifferencing, qemuVhd } from './vhd-kit.js';

const MiB = 1024 * 1024;

async function exercise(t: ExecutionContext, path: string): Promise<boolean> {
  try {
    const image = await openVhd(path);
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

for (const kind of ['dynamic', 'fixed', 'differencing'] as const) {
  test(`mutated ${kind} VHDs open or fail with SbmError`, async (t) => {
    await requireTool(t, 'qemu-img');
    const dir = await tempDir(t);
    const source = join(dir, 'source.vhd');
    await qemuVhd(source, '4M', [`subformat=${kind === 'fixed' ? 'fixed' : 'dynamic'}`], ['write -P 0x5a 0 64k', 'write -P 0x6b 2M 4k']);
    if (kind === 'differencing') {
      await qemuVhd(join(dir, 'parent.vhd'), '4M', [], ['write -P 0x11 1M 4k']);
      await makeDifferencing(source, join(dir, 'parent.vhd'), { w2ru: '.\\parent.vhd', unicodeName: 'parent.vhd' });
    }
    const pristine = await readFile(source);
    const target = join(dir, 'mutant.vhd');
    // Hot spots: the footer copy, header and BAT at the front; the footer (and locators) at the end; anywhere.
    const regions = [
      { from: 0, length: 4096 },
      { from: Math.max(0, pristine.length - 2048), length: Math.min(2048, pristine.length) },
      { from: 0, length: pristine.length },
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...regions), fc.integer(), async (region, seed) => {
        const edits = fc.sample(mutation(region.length), { numRuns: 1, seed })[0] ?? [];
        const mutant = Buffer.from(pristine);
        for (const edit of edits) mutant[region.from + edit.offset] = edit.value;
        await writeFile(target, mutant);
        return exercise(t, target);
      }),
      { numRuns: 120 },
    );
    t.pass();
  });
}
