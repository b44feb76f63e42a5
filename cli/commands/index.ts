// Every `sbm` subcommand, one module per file, loaded on demand: `sbm info x` imports only the
// info module (and what it needs), which keeps start-up short for scripts that call sbm often.
// Add new commands to this table; the key is the command's name.

import type { CommandModule } from 'yargs';
import type { LeanCommand } from '../lean-parse.js';

// biome-ignore lint/suspicious/noExplicitAny: a registry of commands whose argument types all differ
export type AnyCommand = CommandModule<any, any>;

export const COMMAND_LOADERS: Readonly<Record<string, () => Promise<AnyCommand>>> = {
  create: async () => (await import('./create.js')).createCommand,
  info: async () => (await import('./info.js')).infoCommand,
  convert: async () => (await import('./convert.js')).convertCommand,
  export: async () => (await import('./export.js')).exportCommand,
  check: async () => (await import('./check.js')).checkCommand,
  resize: async () => (await import('./resize.js')).resizeCommand,
  mount: async () => (await import('./mount.js')).mountCommand,
  token: async () => (await import('./token.js')).tokenCommand,
  'changed-bands': async () => (await import('./changed-bands.js')).changedBandsCommand,
  snapshot: async () => (await import('./snapshot.js')).snapshotCommand,
  backup: async () => (await import('./backup.js')).backupCommand,
  backups: async () => (await import('./backups.js')).backupsCommand,
  restore: async () => (await import('./restore.js')).restoreCommand,
  verify: async () => (await import('./verify.js')).verifyCommand,
  thin: async () => (await import('./thin.js')).thinCommand,
  map: async () => (await import('./map.js')).mapCommand,
  compare: async () => (await import('./compare.js')).compareCommand,
  compact: async () => (await import('./compact.js')).compactCommand,
  measure: async () => (await import('./measure.js')).measureCommand,
  diff: async () => (await import('./diff.js')).diffCommand,
  sync: async () => (await import('./sync.js')).syncCommand,
};

/**
 * The commands scripts call most, which skip yargs when their arguments are plain
 * (cli/lean-parse.ts). Each also stays in COMMAND_LOADERS for everything else.
 */
export const LEAN_COMMAND_LOADERS: Readonly<Record<string, () => Promise<LeanCommand>>> = {
  token: async () => (await import('./token.js')).tokenLean,
  'changed-bands': async () => (await import('./changed-bands.js')).changedBandsLean,
  backup: async () => (await import('./backup.js')).backupLean,
  convert: async () => (await import('./convert.js')).convertLean,
};

/** The command modules needed to parse `args`: the named one, or all (for help and typos). */
export async function loadCommands(args: readonly string[]): Promise<AnyCommand[]> {
  const name = args.find((arg) => !arg.startsWith('-'));
  const loader = name !== undefined && Object.hasOwn(COMMAND_LOADERS, name) ? COMMAND_LOADERS[name] : undefined;
  if (loader !== undefined) return [await loader()];
  return Promise.all(Object.values(COMMAND_LOADERS).map((load) => load()));
}
