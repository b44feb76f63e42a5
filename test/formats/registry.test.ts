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
  // A bundled library is marked by its source path; an external one (seek-bzip, left in
  // node_modules by scripts/bundle-cli.ts) by the import of its name.
  const bundled = ['xml2js', 'fzstd', 'tar-stream', 'tar'].map((library) => [library, `// node_modules/${library}/`] as const);
  const libraries = [...bundled, ['seek-bzip', 'from "seek-bzip"'] as const];
  // Each library is in some chunk (so this check can fail), a chunk of its own format.
  const all = await Promise.all(
    (await readdir(chunks)).filter((name) => name.endsWith('.js')).map((name) => readFile(join(chunks, name), 'utf8')),
  );
  for (const [library, mark] of libraries)
    t.true(
      all.some((text) => text.includes(mark)),
      `${library} is in a chunk`,
    );
  for (const path of opened) {
    const text = await readFile(path, 'utf8');
    for (const [library, mark] of libraries) t.false(text.includes(mark), `${path} holds ${library}`);
  }
});
