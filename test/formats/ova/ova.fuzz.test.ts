// Hostile input: random damage to a small valid OVA (descriptor, tar headers, manifest, disk) and
// random descriptors. Opening and reading either works or throws an SbmError with a one-line
// message, never anything else, and always finishes. Entities and DTDs are never expanded.

import test from 'ava';
import fc from 'fast-check';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openOvf } from '../../../formats/ova/open-ova.js';
import { parseOvfEnvelope } from '../../../formats/ova/ovf-envelope.js';
import { SbmError } from '../../../lib/errors.js';
import { requireTool, seededBytes, tempDir } from '../../helpers/tools.js';
import { MiB, manifest, ovfXml, streamVmdk, tarPackage, writeText } from './ova-kit.js';

function failsCleanly(error: unknown): boolean {
  return error instanceof SbmError && !error.message.includes('\n');
}

test('damaged OVAs open and read, or fail with one SbmError line', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const raw = Buffer.alloc(4 * MiB);
  seededBytes(MiB, 5).copy(raw, MiB);
  await writeFile(join(dir, 'disk.raw'), raw);
  await streamVmdk(dir, join(dir, 'disk.raw'), 'disk1.vmdk');
  await writeText(dir, 'app.ovf', ovfXml([{ id: 'd', href: 'disk1.vmdk', capacity: 4 * MiB }]));
  await writeText(dir, 'app.mf', await manifest(dir, ['app.ovf', 'disk1.vmdk']));
  const original = await readFile(await tarPackage(dir, 'app.ova', ['app.ovf', 'disk1.vmdk', 'app.mf']));
  const damaged = join(dir, 'damaged.ova');
  let index = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ at: fc.nat({ max: original.length - 1 }), value: fc.integer({ min: 0, max: 255 }) }), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.nat({ max: original.length }),
      async (edits, cut) => {
        const bytes = Buffer.from(original.subarray(0, index++ % 3 === 0 ? cut : original.length));
        for (const { at, value } of edits) if (at < bytes.length) bytes[at] = value;
        await writeFile(damaged, bytes);
        try {
          const disk = await openOvf(damaged, 'ova', {});
          try {
            await disk.read(0, disk.sizeBytes);
            await disk.details();
          } finally {
            await disk.close();
          }
          return true;
        } catch (error) {
          if (!failsCleanly(error)) t.log(error);
          return failsCleanly(error);
        }
      },
    ),
    { numRuns: 150 },
  );
  t.pass();
});

test('random and entity-laden descriptors parse or fail with one SbmError line; no entity is expanded', async (t) => {
  const valid = ovfXml([{ id: 'd', href: 'disk1.vmdk', capacity: 4 * MiB }]);
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 400 }), fc.nat({ max: valid.length }), async (noise, at) => {
      try {
        await parseOvfEnvelope(Buffer.from(valid.slice(0, at) + noise + valid.slice(at)), 'x.ovf');
        return true;
      } catch (error) {
        return failsCleanly(error);
      }
    }),
    { numRuns: 300 },
  );
  const laughs =
    `<?xml version="1.0"?><!DOCTYPE Envelope [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>${valid.replace(
      /^<\?xml[^>]*>/,
      '',
    )}`.replace('capacity="4194304"', 'capacity="&b;"');
  const refused = await parseOvfEnvelope(Buffer.from(laughs), 'laughs.ovf').then(
    () => undefined,
    (error: unknown) => error,
  );
  t.true(refused instanceof SbmError, 'a DTD is refused');
  const external = valid.replace('<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd">');
  await t.throwsAsync(parseOvfEnvelope(Buffer.from(external), 'external.ovf'), { instanceOf: SbmError });
});
