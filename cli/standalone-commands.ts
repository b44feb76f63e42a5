// `sbm token` and `sbm changed-bands`, the commands backup scripts call in a loop, bundled as a
// module of their own (scripts/bundle-cli.ts builds this file apart from the other commands).
// In the shared bundle their code is spread over about 30 chunks, one per set of lazily loaded
// formats and commands that shares it, and Node loads each chunk as a module, one thread-pool
// read after another: a cost every call paid. Built apart, they load as a handful of modules.

import { changedBandsLean } from './commands/changed-bands.js';
import { tokenLean } from './commands/token.js';
import { type LeanCommand, runLean } from './lean-parse.js';

const STANDALONE: Readonly<Record<string, LeanCommand>> = { token: tokenLean, 'changed-bands': changedBandsLean };

/** Runs `name` from this module; false when the arguments need yargs (or the name is not here). */
export async function runStandalone(name: string, args: readonly string[]): Promise<boolean> {
  const command = Object.hasOwn(STANDALONE, name) ? STANDALONE[name] : undefined;
  return command !== undefined && (await runLean(command, args));
}
