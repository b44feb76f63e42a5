// Second build step (after tsc): bundles the `sbm` command with esbuild.
//
// Why: backup scripts call `sbm changed-bands` often, so start-up time is part of every call.
// Resolving, reading and compiling the ~150 separate modules tsc emits (ours plus yargs, plist
// and debug) is most of that time; one bundle replaces tsc's dist/cli/sbm.js. Code splitting
// keeps each command's code (and the plist/XML parser, needed only for plists not in hdiutil's
// layout) in its own chunk under dist/cli/chunks/, so a command compiles only what it runs.
//
// The VMDK inflate worker is bundled too. The pool spawns './inflate-worker.js' relative to its
// own module, so the worker must land in the folder of the chunk holding the pool; the build
// checks that. fs-ext and @napi-rs/lzma stay external: they are native addons loaded from node_modules.

import { type Plugin, build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SbmError } from '../lib/errors.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * yargs' ES-module build loads cliui's ES-module entry, whose stand-in for wrap-ansi cuts lines at
 * the column width, inside words ("sbm co / mpletion"). Its CommonJS build wraps at spaces with
 * wrap-ansi; esbuild bundles that one instead, so help text breaks only between words.
 */
function cliuiWithWordWrap(): Plugin {
  return {
    name: 'cliui-word-wrap',
    setup(builder) {
      builder.onResolve({ filter: /^cliui$/ }, () => ({ path: join(REPO, 'node_modules', 'cliui', 'build', 'index.cjs') }));
    },
  };
}
const WORKER_SOURCE = 'formats/vmdk/inflate-worker.ts';
const POOL_SOURCE = 'formats/vmdk/inflate-pool.ts';

// Chunk names carry content hashes: drop the previous build's so they don't pile up.
await rm(join(REPO, 'dist/cli/chunks'), { recursive: true, force: true });

const result = await build({
  absWorkingDir: REPO,
  entryPoints: [
    { in: 'cli/sbm.ts', out: 'sbm' },
    { in: WORKER_SOURCE, out: 'chunks/inflate-worker' },
  ],
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['fs-ext', '@napi-rs/lzma'],
  sourcemap: 'linked',
  metafile: true,
  plugins: [cliuiWithWordWrap()],
  logLevel: 'warning',
  // Bundled CommonJS packages (yargs' helpers, debug) call require() for Node built-ins; an ES
  // module has no require, so give each output file one.
  banner: { js: "import { createRequire as sbmCreateRequire } from 'node:module';\nconst require = sbmCreateRequire(import.meta.url);" },
});

// The worker and the chunk that spawns it must share a folder (see above).
const outputs = Object.entries(result.metafile.outputs).filter(([path]) => path.endsWith('.js'));
const worker = outputs.find(([, output]) => output.entryPoint === WORKER_SOURCE)?.[0];
const pool = outputs.find(([path, output]) => path !== worker && POOL_SOURCE in output.inputs)?.[0];
if (worker === undefined || pool === undefined || dirname(worker) !== dirname(pool)) {
  throw new SbmError('SBM_INTERNAL', `bundle: the inflate worker (${worker}) is not beside the pool that spawns it (${pool})`, {
    worker,
    pool,
  });
}
