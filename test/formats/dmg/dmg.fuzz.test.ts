// Hostile UDIF input: random damage to the koly trailer, the XML plist and the mish tables of a
// small valid image, and random bytes handed to each parser alone. Opening and reading either works
// or throws an SbmError whose message is one line; nothing else, and nothing printed (the XML
// parser's console complaints are silenced), and it always finishes (ava's timeout catches a hang).

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTables, parseKoly } from '../../../formats/dmg/dmg-tables.js';
import { openDmg, parseDmgPlist } from '../../../formats/dmg/open-dmg.js';
import { SbmError } from '../../../lib/errors.js';
import { tempDir } from '../../helpers/tools.js';
import { type PlannedPartition, buildDmg, sampleDisk } from './dmg-kit.js';

const PLAN: readonly PlannedPartition[] = [
  {
    name: 'p0',
    chunks: [
      { sectors: 4, kind: 'raw' },
      { sectors: 4, kind: 'zero' },
    ],
  },
  {
    name: 'p1',
    chunks: [
      { sectors: 24, kind: 'zlib' },
      { sectors: 32, kind: 'adc' },
      { sectors: 16, kind: 'bzip2' },
    ],
  },
];

function oneLineSbmError(t: ExecutionContext, error: unknown): boolean {
  if (error instanceof SbmError && !error.message.includes('\n')) return true;
  t.log(error);
  return false;
}

async function exercise(t: ExecutionContext, path: string): Promise<boolean> {
  try {
    const image = await openDmg(path);
    try {
      await image.extents(0, image.sizeBytes);
      await image.read(0, Math.min(image.sizeBytes, 4 * 1024 * 1024));
      await image.details();
    } finally {
      await image.close();
    }
    return true;
  } catch (error) {
    return oneLineSbmError(t, error);
  }
}

const edits = (limit: number) =>
  fc.array(fc.record({ offset: fc.nat({ max: limit - 1 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 });

test('damaged UDIF images (trailer, plist, tables, data) open and read or fail with a one-line SbmError', async (t) => {
  const dir = await tempDir(t);
  const pristine = buildDmg(sampleDisk(80, 7), PLAN);
  const xmlStart = Number(pristine.readBigUInt64BE(pristine.length - 512 + 216));
  const regions: Array<[number, number]> = [
    [pristine.length - 512, 512], // koly
    [xmlStart, pristine.length - 512 - xmlStart], // plist (base64 mish tables inside)
    [0, xmlStart], // data fork
  ];
  const target = join(dir, 'mutant.dmg');
  const printed: unknown[] = [];
  const saved = console.error;
  console.error = (...args: unknown[]) => printed.push(args);
  t.teardown(() => {
    console.error = saved;
  });
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...regions), edits(4096), async ([start, length], changes) => {
      const mutant = Buffer.from(pristine);
      for (const { offset, value } of changes) mutant[start + (offset % length)] = value;
      await writeFile(target, mutant);
      return exercise(t, target);
    }),
    { numRuns: 150 },
  );
  t.deepEqual(printed, [], 'nothing printed');
});

test('random trailers, plists and mish tables are refused with a one-line SbmError', async (t) => {
  const koly = buildDmg(sampleDisk(8), [{ name: 'p', chunks: [{ sectors: 8, kind: 'raw' }] }]).subarray(-512);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.nat({ max: 1 << 20 }), (bytes, size) => {
      const trailer = Buffer.from(koly);
      trailer.set(bytes.subarray(4, 512), 4);
      try {
        parseKoly('t.dmg', trailer, size);
        return true;
      } catch (error) {
        return oneLineSbmError(t, error);
      }
    }),
    { numRuns: 300 },
  );
  const parsedKoly = parseKoly('t.dmg', Buffer.from(koly), 1 << 20);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 2048 }), (bytes) => {
      const data = Buffer.from(bytes);
      if (data.length >= 4) data.write('mish', 0, 'latin1');
      try {
        buildTables('t.dmg', parsedKoly, [{ name: 'fuzz', data }]);
        return true;
      } catch (error) {
        return oneLineSbmError(t, error);
      }
    }),
    { numRuns: 300 },
  );
  const tags = fc.constantFrom(
    '<plist>',
    '</plist>',
    '<dict>',
    '</dict>',
    '<key>blkx</key>',
    '<array>',
    '<data>',
    '</data>',
    'AAAA',
    '<',
    '&',
  );
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(tags, fc.string()), { maxLength: 30 }), async (parts) => {
      try {
        await parseDmgPlist('t.dmg', Buffer.from(`<?xml version="1.0"?>${parts.join('')}</plist>`));
        return true;
      } catch (error) {
        return oneLineSbmError(t, error);
      }
    }),
    { numRuns: 300 },
  );
  t.pass();
});
