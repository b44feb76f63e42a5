#!/usr/bin/env node
// Entry point of the `sbm` command.

import { hideBin } from 'yargs/helpers';
import { buildCli } from './build-cli.js';

// `sbm changed-bands ... | head` closes the pipe early: that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

await (await buildCli(hideBin(process.argv))).parseAsync();
