// Hostile input: random damage to a small valid disk folder (its DiskDescriptor.xml and its
// expanding images) and random XML documents. Opening and reading either works or throws an
// SbmError with a one-line message, never anything else, and always finishes (ava's timeout
// catches a hang). The XML parser refuses every DTD, whatever else the document holds.

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openParallelsFolder } from '../../../formats/parallels/open-parallels.js';
import { parseXml } from '../../../formats/xml/safe-xml.js';
import { SbmError } from '../../../lib/errors.js';
import { requireTool, tempDir } from '../../helpers/tools.js';
import { MiB, TOP, ZERO, descriptorXml, qemuHds } from './parallels-kit.js';

const BASE = '{b3c2a1d0-7e6f-4a5b-8c9d-0e1f2a3b4c5d}';

async function exercise(t: ExecutionContext, folder: string): Promise<boolean> {
  try {
    const image = await openParallelsFolder(folder);
    try {
      await image.extents(0, image.sizeBytes);
      const chunk = 256 * 1024;
      for (let offset = 0; offset < Math.min(image.sizeBytes, 4 * MiB); offset += chunk)
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

async function makeFolder(t: ExecutionContext): Promise<{ dir: string; folder: string; xml: string; images: Map<string, Buffer> }> {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const folder = join(dir, 'seed.hdd');
  await mkdir(folder);
  await qemuHds(join(folder, 'base.hds'), '2M', ['write -P 0x11 0 1M'], '64k');
  await qemuHds(join(folder, 'top.hds'), '2M', ['write -P 0x22 512k 64k'], '64k');
  const xml = descriptorXml({
    diskSectors: 4096,
    storages: [
      {
        start: 0,
        end: 4096,
        images: [
          { guid: BASE, file: 'base.hds' },
          { guid: TOP, file: 'top.hds' },
        ],
      },
    ],
    shots: [
      [BASE, ZERO],
      [TOP, BASE],
    ],
  });
  const images = new Map<string, Buffer>();
  for (const name of ['base.hds', 'top.hds']) images.set(name, await readFile(join(folder, name)));
  return { dir, folder, xml, images };
}

test('damaged descriptors open or fail with one-line SbmErrors', async (t) => {
  const { dir, folder, xml } = await makeFolder(t);
  let round = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ at: fc.nat({ max: xml.length }), cut: fc.nat({ max: 40 }), text: fc.string({ maxLength: 12 }) }), {
        minLength: 1,
        maxLength: 4,
      }),
      async (edits) => {
        let text = xml;
        for (const edit of edits) text = text.slice(0, edit.at) + edit.text + text.slice(edit.at + edit.cut);
        const copy = join(dir, `d${round++}.hdd`);
        await mkdir(copy);
        for (const name of ['base.hds', 'top.hds']) await copyFile(join(folder, name), join(copy, name));
        await writeFile(join(copy, 'DiskDescriptor.xml'), text);
        return exercise(t, copy);
      },
    ),
    { numRuns: 60 },
  );
  t.pass();
});

test('damaged expanding images (header and BAT) open or fail with one-line SbmErrors', async (t) => {
  const { dir, xml, images } = await makeFolder(t);
  let round = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('base.hds', 'top.hds'),
      fc.array(fc.record({ offset: fc.nat({ max: 64 + 4 * 32 - 1 }), value: fc.integer({ min: 0, max: 255 }) }), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.option(fc.nat({ max: 200_000 })),
      async (name, pokes, truncateTo) => {
        const copy = join(dir, `i${round++}.hdd`);
        await mkdir(copy);
        for (const [file, bytes] of images) {
          let data = Buffer.from(bytes);
          if (file === name) {
            for (const poke of pokes) data[poke.offset] = poke.value;
            if (truncateTo !== null) data = data.subarray(0, truncateTo);
          }
          await writeFile(join(copy, file), data);
        }
        await writeFile(join(copy, 'DiskDescriptor.xml'), xml);
        return exercise(t, copy);
      },
    ),
    { numRuns: 80 },
  );
  t.pass();
});

const xmlOptions = { what: 'test document', path: 'test.xml', maxBytes: 64 * 1024 };

test('random text parses or fails with a one-line SbmError', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
      ),
      async (text) => {
        try {
          await parseXml(Buffer.from(`<a>${text}</a>`), xmlOptions);
          return true;
        } catch (error) {
          return error instanceof SbmError && !error.message.includes('\n');
        }
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('a DTD anywhere is refused before parsing: no entity is ever expanded, internal or external', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(
        '<!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;">]>',
        '<!DOCTYPE a SYSTEM "file:///etc/passwd">',
        '<!doctype a [<!ENTITY xxe SYSTEM "http://127.0.0.1:1/">]>',
        '<!ENTITY % p SYSTEM "x">',
      ),
      fc.string({ maxLength: 20 }),
      async (dtd, filler) => {
        const text = `<?xml version="1.0"?>\n${dtd}\n<a>${filler.replace(/[<&]/g, '')}&y;&xxe;</a>`;
        const error = await parseXml(Buffer.from(text), xmlOptions).then(
          () => undefined,
          (caught: unknown) => caught,
        );
        return error instanceof SbmError && error.code === 'SBM_UNSUPPORTED' && /DTD/.test(error.message);
      },
    ),
    { numRuns: 40 },
  );
  const entity = await parseXml(Buffer.from('<a>&undeclared;</a>'), xmlOptions).catch((error: unknown) => error);
  t.true(entity instanceof SbmError && entity.code === 'SBM_CORRUPT', 'an undeclared entity is not well-formed');
  const builtIn = await parseXml(Buffer.from('<a>&lt;&amp;</a>'), xmlOptions);
  t.deepEqual(builtIn, { a: '<&' }, 'the five built-in entities still decode');
  const big = await parseXml(Buffer.alloc(xmlOptions.maxBytes + 1, 0x20), xmlOptions).catch((error: unknown) => error);
  t.true(big instanceof SbmError && big.code === 'SBM_UNSUPPORTED', 'over the cap: refused unread');
});
