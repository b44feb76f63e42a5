// Second build step (after tsc): bundles the `sbm` command into one ESM file with esbuild.
//
// Why: every `sbm` call used to resolve, read and compile ~150 separate modules (ours plus yargs,
// plist and debug), which cost ~0.15 s before any work began; backup scripts call
// `sbm changed-bands` often. One pre-linked file loads in a fraction of that. The bundle replaces
// tsc's dist/cli/sbm.js, and the VMDK inflate worker is bundled beside it (the pool resolves
// './inflate-worker.js' next to the code that spawns it). fs-ext stays external: it is a native
// addon loaded from node_modules.

import { build } from 'esbuild';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

await build({
  absWorkingDir: REPO,
  entryPoints: [
    { in: 'cli/sbm.ts', out: 'sbm' },
    { in: 'formats/vmdk/inflate-worker.ts', out: 'inflate-worker' },
  ],
  outdir: 'dist/cli',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['fs-ext'],
  sourcemap: 'linked',
  logLevel: 'warning',
  // Bundled CommonJS packages (yargs' helpers, debug) call require() for Node built-ins; an ES
  // module has no require, so give the bundle one.
  banner: { js: "import { createRequire as sbmCreateRequire } from 'node:module';\nconst require = sbmCreateRequire(import.meta.url);" },
});
