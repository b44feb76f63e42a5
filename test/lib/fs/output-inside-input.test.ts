import test from 'ava';
import { link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertOutputOutsideInputs, filesNamedIn } from '../../../lib/fs/output-inside-input.js';
import { tempDir } from '../../helpers/tools.js';

async function layout(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t);
  const input = join(dir, 'in.sparsebundle');
  await mkdir(join(input, 'bands'), { recursive: true });
  await writeFile(join(input, 'bands', '7'), 'band');
  await symlink(input, join(dir, 'alias'));
  await symlink(join(input, 'bands'), join(dir, 'bands-link'));
  await link(join(input, 'bands', '7'), join(dir, 'hardlink'));
  await mkdir(join(dir, 'elsewhere'));
  return { dir, input };
}

test('outputs equal to or inside an input are refused however the path is spelled', async (t) => {
  const { dir, input } = await layout(t);
  const inside = [
    input,
    join(input, 'bands', '7'),
    join(input, 'bands', 'new', 'deeper', 'file'),
    join(dir, 'elsewhere', '..', 'in.sparsebundle', 'x'),
    join(dir, 'alias', 'bands', '7'),
    join(dir, 'alias'),
    join(dir, 'bands-link', 'not-yet'),
  ];
  for (const output of inside) {
    await t.throwsAsync(assertOutputOutsideInputs(output, [input]), { code: 'SBM_OUTPUT_INSIDE_INPUT' }, output);
  }
  // A file input is refused under another name (hard link) too.
  await t.throwsAsync(assertOutputOutsideInputs(join(dir, 'hardlink'), [join(input, 'bands', '7')]), {
    code: 'SBM_OUTPUT_INSIDE_INPUT',
    message: / is the input /,
  });
  // An input given through a symlink is the same input.
  await t.throwsAsync(assertOutputOutsideInputs(join(input, 'bands', '7'), [join(dir, 'alias')]), { code: 'SBM_OUTPUT_INSIDE_INPUT' });
});

test('an existing output holding an input is refused unless the caller only adds to it', async (t) => {
  const { dir, input } = await layout(t);
  await t.throwsAsync(assertOutputOutsideInputs(dir, [input]), { code: 'SBM_OUTPUT_INSIDE_INPUT', message: /holds the input/ });
  await t.notThrowsAsync(assertOutputOutsideInputs(dir, [input], { refuseInputInsideOutput: false }));
  // Not there yet: it cannot hold anything.
  await t.notThrowsAsync(assertOutputOutsideInputs(join(dir, 'fresh', 'out.raw'), [input]));
});

test('outputs beside an input, and inputs that do not exist, pass', async (t) => {
  const { dir, input } = await layout(t);
  for (const output of [join(dir, 'in.raw'), join(dir, 'in.sparsebundle2'), join(dir, 'elsewhere', 'x')]) {
    await t.notThrowsAsync(assertOutputOutsideInputs(output, [input, join(dir, 'missing')]), output);
  }
});

test('filesNamedIn collects every `file` of nested details', (t) => {
  const details = {
    extents: [{ file: '/a/x-flat.vmdk' }, { type: 'ZERO' }],
    chain: [{ file: '/a/x.vmdk', nested: { file: '/a/p.vmdk' } }],
    file: 3,
  };
  t.deepEqual(filesNamedIn(details), ['/a/x-flat.vmdk', '/a/x.vmdk', '/a/p.vmdk']);
});
