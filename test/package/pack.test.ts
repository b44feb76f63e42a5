// The package as users get it: `npm pack` holds only dist/ and the README, installs into a fresh
// project, and the README's Library API example, taken verbatim from README.md, type-checks
// against the shipped .d.ts files (module nodenext) and runs there.

import test from 'ava';
import { execa } from 'execa';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { REPO_ROOT, runSbm, tempDir } from '../helpers/tools.js';

/** The first ```ts block under "## Library API" in README.md. */
async function readmeExample(): Promise<string> {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Library API'));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (match?.[1] === undefined) return '';
  return match[1];
}

test('npm pack ships dist/ and the README; the README example type-checks and runs in a fresh project', async (t) => {
  await access(join(REPO_ROOT, 'dist/api/index.d.ts')).catch(() => t.fail('dist/api/index.d.ts missing: run npm run build'));
  const dir = await tempDir(t, 'sbm-pack-');
  // --ignore-scripts: the prepare script would rebuild dist/, which the suite already built.
  const packed = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: REPO_ROOT });
  const [info] = JSON.parse(packed.stdout) as { filename: string; size: number; files: { path: string }[] }[];
  if (info === undefined) return t.fail('npm pack printed no package');
  const paths = info.files.map((file) => file.path);
  t.true(info.size < 2 * 2 ** 20, `package is ${info.size} bytes`);
  t.true(paths.includes('README.md') && paths.includes('dist/cli/sbm.js') && paths.includes('dist/api/index.d.ts'));
  t.deepEqual(
    paths.filter((path) => !path.startsWith('dist/') && path !== 'README.md' && path !== 'package.json' && path !== 'LICENSE'),
    [],
  );
  t.false(paths.some((path) => /^dist\/(test|scripts)\/|\.map$/.test(path)));

  const project = join(dir, 'consumer');
  await mkdir(join(project, 'run'), { recursive: true });
  const manifest = { name: 'consumer', private: true, type: 'module', allowScripts: { 'fs-ext': true } };
  await writeFile(join(project, 'package.json'), JSON.stringify(manifest));
  await execa('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, info.filename)], { cwd: project });

  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2023', 'ESNext.Disposable'],
      module: 'nodenext',
      moduleResolution: 'nodenext',
      strict: true,
      types: ['node'],
      typeRoots: [join(REPO_ROOT, 'node_modules/@types')],
      outDir: 'out',
    },
    files: ['consumer.ts'],
  };
  await writeFile(join(project, 'tsconfig.json'), JSON.stringify(tsconfig));
  const example = await readmeExample();
  t.true(example.includes("from 'sbm'"), 'the README example imports the package, not repository paths');
  await writeFile(join(project, 'consumer.ts'), example);
  const tsc = await execa(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: project, reject: false });
  t.is(tsc.exitCode, 0, tsc.stdout);

  // Run in its own folder: the example creates vm.sparsebundle, disk.img and disk.sparsebundle there.
  const run = await execa('node', ['../out/consumer.js'], { cwd: join(project, 'run'), reject: false });
  t.is(run.exitCode, 0, run.stderr);
  t.deepEqual(run.stdout.split('\n'), [
    "true { offset: 0, length: 8192, kind: 'data' }",
    '[ 5 ]',
    'snapshot 0',
    'true',
    '1 true',
    'SBM_NOT_FOUND',
  ]);

  // The subpath export resolves too, and the bin still runs from the installed package.
  const formats = await execa('node', ['--input-type=module', '-e', "import('sbm/formats').then((m) => console.log(typeof m.openImage))"], {
    cwd: project,
  });
  t.is(formats.stdout, 'function');
  const bin = await execa(join(project, 'node_modules/.bin/sbm'), ['--version'], { cwd: project, reject: false });
  t.is(bin.exitCode, 0, bin.stderr);
});

test('changed-bands --json names a band bandIndex, as the library does, and keeps index for existing scripts', async (t) => {
  const dir = await tempDir(t);
  const disk = join(dir, 'd.sparsebundle');
  t.is((await runSbm(['create', disk, '--size', '16M', '--band-size', '8M'])).exitCode, 0);
  const token = (await runSbm(['token', disk])).stdout.trim();
  const bundle = await SparseBundle.open(disk);
  await bundle.write(8 * 2 ** 20, Buffer.from('x'), { fua: false });
  await bundle.close();
  const changed = await runSbm(['changed-bands', disk, '--since', token, '--json']);
  t.is(changed.exitCode, 0, changed.stderr);
  t.like(JSON.parse(changed.stdout).bands[0], { bandIndex: 1, index: 1 });
});
