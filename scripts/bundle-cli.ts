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
// external: they are native addons loaded from node_modules. So does seek-bzip: its decoder calls
// `new Buffer()`, which Node warns about (DEP0005) only for code outside node_modules.
//
// `sbm token` and `sbm changed-bands` are bundled a second time, apart (cli/standalone-commands.ts):
// in the shared graph their code is spread over ~30 chunks, each one more module to load.

import { type BuildOptions, type Plugin, build } from 'esbuild';
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

/** The entry's import of the standalone commands stays an import of the file built for them. */
function standaloneCommandsExternal(): Plugin {
  return {
    name: 'standalone-commands-external',
    setup(builder) {
      builder.onResolve({ filter: /^\.\/standalone-commands\.js$/ }, ({ path }) => ({ path, external: true }));
    },
  };
}

// Chunk names carry content hashes: drop the previous build's so they don't pile up.
await rm(join(REPO, 'dist/cli/chunks'), { recursive: true, force: true });
await rm(join(REPO, 'dist/cli/standalone-chunks'), { recursive: true, force: true });

const COMMON = {
  absWorkingDir: REPO,
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['fs-ext', '@napi-rs/lzma', 'sockopt', 'seek-bzip'],
  sourcemap: 'linked',
  logLevel: 'warning',
  // Bundled CommonJS packages (yargs' helpers, debug) call require() for Node built-ins; an ES
  // module has no require, so give each output file one.
  banner: { js: "import { createRequire as sbmCreateRequire } from 'node:module';\nconst require = sbmCreateRequire(import.meta.url);" },
} satisfies BuildOptions;

const result = await build({
  ...COMMON,
  entryPoints: [{ in: 'cli/sbm.ts', out: 'sbm' }, ...WORKERS.map(({ source, out }) => ({ in: source, out }))],
  chunkNames: 'chunks/[name]-[hash]',
  metafile: true,
  plugins: [cliuiWithWordWrap(), standaloneCommandsExternal()],
});

// Replaces tsc's dist/cli/standalone-commands.js; its lazily loaded parts go to their own folder.
const standalone = await build({
  ...COMMON,
  entryPoints: [{ in: 'cli/standalone-commands.ts', out: 'standalone-commands' }],
  chunkNames: 'standalone-chunks/[name]-[hash]',
  metafile: true,
  plugins: [cliuiWithWordWrap()],
});
// A worker's spawner in there would look for the worker script beside it, where there is none.
for (const { spawner } of WORKERS) {
  if (spawner in standalone.metafile.inputs) {
    throw new SbmError('SBM_INTERNAL', `bundle: the standalone commands include ${spawner}, which spawns a worker`, { spawner });
  }
}

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
