// The format registry loads each format's code only when it is used: the exporters it lists by
// their facts must say exactly what the loaded exporters say, and the CLI must not load a
// format's libraries for a command that never reaches that format.

import test from 'ava';
import { execa } from 'execa';
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EXPORTERS, LOAD_EXPORTERS } from '../../formats/index.js';
import { SBM_BIN } from '../helpers/tools.js';

test('every listed exporter has the facts of the exporter it loads', async (t) => {
  t.deepEqual(
    EXPORTERS.map((exporter) => exporter.name),
    Object.keys(LOAD_EXPORTERS),
  );
  for (const listed of EXPORTERS) {
    const loaded = await (LOAD_EXPORTERS[listed.name] as () => Promise<(typeof EXPORTERS)[number]>)();
    const facts = ({ export: _export, ...rest }: (typeof EXPORTERS)[number]) => ({
      ...rest,
      subformats: rest.subformats && [...rest.subformats],
    });
    t.deepEqual(facts(listed), facts(loaded), listed.name);
  }
});

test('a convert that fails before opening a format loads no chunk holding a format library', async (t) => {
  const run = await execa(
    'strace',
    ['-f', '-e', 'trace=openat', 'node', SBM_BIN, 'convert', '/nonexistent.img', '/tmp/never.sparsebundle'],
    {
      reject: false,
    },
  );
  t.regex(run.stderr, /SBM_NOT_FOUND: cannot read input \/nonexistent\.img/);
  const opened = [
    ...new Set([...run.stderr.matchAll(/openat\([^"]*"([^"]*\/dist\/cli\/chunks\/[^"]+\.js)"/g)].map((match) => match[1] as string)),
  ];
  t.true(opened.length > 0, 'the CLI loads its code from dist/cli/chunks');
  const chunks = join(dirname(SBM_BIN), 'chunks');
  const libraries = ['xml2js', 'seek-bzip', 'fzstd', 'tar-stream', 'tar'];
  // The libraries are in the bundle (so this check can fail), in chunks of their own formats.
  const all = await Promise.all(
    (await readdir(chunks)).filter((name) => name.endsWith('.js')).map((name) => readFile(join(chunks, name), 'utf8')),
  );
  for (const library of libraries)
    t.true(
      all.some((text) => text.includes(`// node_modules/${library}/`)),
      `${library} is bundled`,
    );
  for (const path of opened) {
    const text = await readFile(path, 'utf8');
    for (const library of libraries) t.false(text.includes(`// node_modules/${library}/`), `${path} holds ${library}`);
  }
});
