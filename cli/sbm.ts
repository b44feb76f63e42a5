#!/usr/bin/env node
// Entry point of the `sbm` command.

import { LEAN_COMMAND_LOADERS } from './commands/index.js';
import { runLean } from './lean-parse.js';

// `sbm changed-bands ... | head` closes the pipe early: that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

const args = process.argv.slice(2);
// Own keys only: `sbm constructor` must reach yargs' unknown-command error, not Object.
const lean = args[0] !== undefined && Object.hasOwn(LEAN_COMMAND_LOADERS, args[0]) ? LEAN_COMMAND_LOADERS[args[0]] : undefined;
// yargs is loaded only when the lean path steps aside: it is a quarter of a changed-bands call.
if (lean === undefined || !(await runLean(await lean(), args.slice(1)))) {
  const { buildCli } = await import('./build-cli.js');
  await (await buildCli(args)).parseAsync();
}
