// Every `sbm` subcommand, one module per file. Add new commands to this list.

import type { CommandModule } from 'yargs';
import { checkCommand } from './check.js';
import { convertCommand } from './convert.js';
import { createCommand } from './create.js';
import { exportCommand } from './export.js';
import { infoCommand } from './info.js';
import { resizeCommand } from './resize.js';
import { mountCommand } from './mount.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const COMMANDS: CommandModule<any, any>[] = [
  createCommand,
  infoCommand,
  convertCommand,
  exportCommand,
  checkCommand,
  resizeCommand,
  mountCommand,
];
