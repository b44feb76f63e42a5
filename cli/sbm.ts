#!/usr/bin/env node
// Entry point of the `sbm` command.

import { hideBin } from 'yargs/helpers';
import { buildCli } from './build-cli.js';

await (await buildCli(hideBin(process.argv))).parseAsync();
