#!/usr/bin/env node
// Entry point of the `sbm` command.

// `sbm changed-bands ... | head` closes the pipe early: that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

/** The lean commands cli/standalone-commands.ts holds in a module of its own. */
const STANDALONE_NAMES: readonly string[] = ['token', 'changed-bands'];

/** Runs a lean command with plain arguments (cli/lean-parse.ts); false when yargs is needed. */
async function runWithoutYargs(args: readonly string[]): Promise<boolean> {
  const name = args[0];
  if (name === undefined) return false;
  if (STANDALONE_NAMES.includes(name)) return (await import('./standalone-commands.js')).runStandalone(name, args.slice(1));
  const [{ LEAN_COMMAND_LOADERS }, { runLean }] = await Promise.all([import('./commands/index.js'), import('./lean-parse.js')]);
  // Own keys only: `sbm constructor` must reach yargs' unknown-command error, not Object.
  const lean = Object.hasOwn(LEAN_COMMAND_LOADERS, name) ? LEAN_COMMAND_LOADERS[name] : undefined;
  return lean !== undefined && (await runLean(await lean(), args.slice(1)));
}

const args = process.argv.slice(2);
// yargs is loaded only when the lean path steps aside: it is a quarter of a changed-bands call.
if (!(await runWithoutYargs(args))) {
  const { buildCli } = await import('./build-cli.js');
  await (await buildCli(args)).parseAsync();
}
