// Second build step (after tsc): bundles the `sbm` command with esbuild.
//
// Why: backup scripts call `sbm changed-bands` often, so start-up time is part of every call.
// Resolving, reading and compiling the ~150 separate modules tsc emits (ours plus yargs, plist
// and debug) is most of that time; one bundle replaces tsc's dist/cli/sbm.js. Code splitting
// keeps each command's code (and the plist/XML parser, needed only for plists not in hdiutil's
// layout) in its own chunk under dist/cli/chunks/, so a command compiles only what it runs.
//
// The worker threads' scripts (VMDK inflation, band hashing) are bundled too. Each is spawned as
// './<name>.js' relative to the module that spawns it, so it must land in the folder of the
// chunk holding that module; the build checks that. fs-ext, @napi-rs/lzma and sockopt stay
// external: they are native addons loaded from node_modules.

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
/** Each worker script, the module that spawns it, and the worker's output name. */
const WORKERS = [
  { source: 'formats/vmdk/inflate-worker.ts', spawner: 'formats/vmdk/inflate-pool.ts', out: 'chunks/inflate-worker' },
  { source: 'lib/backup/hash-worker.ts', spawner: 'lib/backup/band-hasher.ts', out: 'chunks/hash-worker' },
] as const;

// Chunk names carry content hashes: drop the previous build's so they don't pile up.
await rm(join(REPO, 'dist/cli/chunks'), { recursive: true, force: true });

const result = await build({
  absWorkingDir: REPO,
  entryPoints: [{ in: 'cli/sbm.ts', out: 'sbm' }, ...WORKERS.map(({ source, out }) => ({ in: source, out }))],
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['fs-ext', '@napi-rs/lzma', 'sockopt'],
  sourcemap: 'linked',
  metafile: true,
  plugins: [cliuiWithWordWrap()],
  logLevel: 'warning',
  // Bundled CommonJS packages (yargs' helpers, debug) call require() for Node built-ins; an ES
  // module has no require, so give each output file one.
  banner: { js: "import { createRequire as sbmCreateRequire } from 'node:module';\nconst require = sbmCreateRequire(import.meta.url);" },
});

// Each worker and the chunk that spawns it must share a folder (see above).
const outputs = Object.entries(result.metafile.outputs).filter(([path]) => path.endsWith('.js'));
for (const { source, spawner } of WORKERS) {
  const worker = outputs.find(([, output]) => output.entryPoint === source)?.[0];
  const spawning = outputs.find(([path, output]) => path !== worker && spawner in output.inputs)?.[0];
  if (worker === undefined || spawning === undefined || dirname(worker) !== dirname(spawning)) {
    throw new SbmError('SBM_INTERNAL', `bundle: the worker ${worker} is not beside the chunk that spawns it (${spawning})`, {
      worker,
      spawning,
    });
  }
}
