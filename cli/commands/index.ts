// Every `sbm` subcommand, one module per file. Add new commands to this list.

import type { CommandModule } from 'yargs';
import { backupCommand } from './backup.js';
import { backupsCommand } from './backups.js';
import { checkCommand } from './check.js';
import { convertCommand } from './convert.js';
import { createCommand } from './create.js';
import { exportCommand } from './export.js';
import { infoCommand } from './info.js';
import { resizeCommand } from './resize.js';
import { restoreCommand } from './restore.js';
import { thinCommand } from './thin.js';
import { verifyCommand } from './verify.js';
import { mountCommand } from './mount.js';
import { tokenCommand } from './token.js';
import { changedBandsCommand } from './changed-bands.js';
import { snapshotCommand } from './snapshot.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const COMMANDS: CommandModule<any, any>[] = [
  createCommand,
  infoCommand,
  convertCommand,
  exportCommand,
  checkCommand,
  resizeCommand,
  backupCommand,
  backupsCommand,
  restoreCommand,
  verifyCommand,
  thinCommand,
  mountCommand,
  tokenCommand,
  changedBandsCommand,
  snapshotCommand,
];
