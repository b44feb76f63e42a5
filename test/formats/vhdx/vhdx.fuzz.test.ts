// Fuzz property: random damage to a small differencing VHDX (headers and region tables with
// their CRC-32C recomputed or not, metadata table and items, parent locator, BAT, sector
// bitmap) either opens and reads, or fails with a one-line SbmError; never anything else, and
// always finishes (ava's timeout catches a hang).

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_ZERO,
} from '../../../formats/vhdx/constants.js';
import { openVhdx } from '../../../formats/vhdx/open-vhdx.js';
import { SbmError } from '../../../lib/errors.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';
import { BUILT_LAYOUT, MiB, buildVhdx, fixHeaderCrc, fixRegionTableCrcs } from './vhdx-kit.js';

const SIZE = 4 * MiB;

async function exercise(t: ExecutionContext, path: string): Promise<boolean> {
  try {
    const image = await openVhdx(path);
    try {
      await image.extents(0, image.sizeBytes);
      await image.read(0, image.sizeBytes);
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

test('mutated VHDX files open or fail with a one-line SbmError', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'parent.vhdx'),
    buildVhdx({
      virtualSize: SIZE,
      blockSize: MiB,
      blocks: new Map([[0, { state: PAYLOAD_BLOCK_FULLY_PRESENT, data: seededBytes(MiB, 1) }]]),
    }),
  );
  const blocks = new Map([
    [0, { state: PAYLOAD_BLOCK_PARTIALLY_PRESENT, data: seededBytes(MiB, 2), presentSectors: [0, 7, 9] }],
    [1, { state: PAYLOAD_BLOCK_FULLY_PRESENT, data: seededBytes(MiB, 3) }],
    [2, { state: PAYLOAD_BLOCK_ZERO }],
  ]);
  const pristine = buildVhdx({
    virtualSize: SIZE,
    blockSize: MiB,
    blocks,
    parentLocator: { parent_linkage: '{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}', relative_path: 'parent.vhdx' },
  });
  const target = join(dir, 'child.vhdx');
  await writeFile(target, pristine);
  t.true(await exercise(t, target), 'the pristine file opens');
  // [start, length] of the hot spots: headers, region tables, metadata table and items, BAT,
  // the sector bitmap's first bytes.
  const spots: Array<[number, number]> = [
    [0, 16],
    [HEADER1_OFFSET, 96],
    [HEADER2_OFFSET, 96],
    [192 * 1024, 96],
    [256 * 1024, 96],
    [BUILT_LAYOUT.metadataOffset, 32 + 6 * 32],
    [BUILT_LAYOUT.metadataOffset + 64 * 1024, 6 * 4096],
    [BUILT_LAYOUT.batOffset, 8 * 8 + 8 * 4097],
    [BUILT_LAYOUT.firstBlock + 2 * MiB, 64],
  ];
  const mutation = fc.record({
    spot: fc.nat({ max: spots.length - 1 }),
    changes: fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 }),
    fixCrcs: fc.boolean(),
  });
  const handle = await open(target, 'r+');
  try {
    await fc.assert(
      fc.asyncProperty(mutation, async ({ spot, changes, fixCrcs }) => {
        const [start, length] = spots[spot] ?? [0, 1];
        const file = Buffer.from(pristine.subarray(0, MiB));
        const touched: number[] = [];
        for (const { at, value } of changes) {
          const offset = start + (at % length);
          touched.push(offset);
          if (offset < MiB) file.writeUInt8(value, offset);
          else await handle.write(Buffer.of(value), 0, 1, offset);
        }
        if (fixCrcs) {
          fixHeaderCrc(file, HEADER1_OFFSET);
          fixHeaderCrc(file, HEADER2_OFFSET);
          fixRegionTableCrcs(file);
        }
        await handle.write(file, 0, MiB, 0);
        const ok = await exercise(t, target);
        // Restore the pristine bytes before the next run.
        await handle.write(pristine, 0, MiB, 0);
        for (const offset of touched) if (offset >= MiB) await handle.write(pristine, offset, 1, offset);
        return ok;
      }),
      { numRuns: 300, seed: 1303 },
    );
    t.pass();
  } finally {
    await handle.close();
  }
});
