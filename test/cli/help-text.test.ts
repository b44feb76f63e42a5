// Help text: lines break between words at the width asked for (COLUMNS when not a terminal),
// every positional of every command is described, sizes are shown as sizes, and `sbm --help`
// names the exit statuses and DEBUG=sbm:*.

import test from 'ava';
import { COMMAND_LOADERS } from '../../cli/commands/index.js';
import { runSbm } from '../helpers/tools.js';

async function help(args: string[], columns: number): Promise<string> {
  const result = await runSbm([...args, '--help'], { env: { COLUMNS: String(columns) } });
  if (result.exitCode !== 0) throw new Error(`sbm ${args.join(' ')} --help: ${result.stderr}`);
  return result.stdout;
}

/** The words of a text, counted; a word cut by a line break shows up as two strange ones. */
function words(text: string): string[] {
  const counts = new Map<string, number>();
  // cliui may set a type tag right after a full-width description: "...8G[string]".
  for (const word of text.split(/\s+|(?=\[)/).filter((part) => part.length > 0)) counts.set(word, (counts.get(word) ?? 0) + 1);
  return [...counts].map(([word, count]) => `${word} x${count}`).sort();
}

const COMMANDS = [[], ...Object.keys(COMMAND_LOADERS).map((name) => [name])];

for (const args of COMMANDS) {
  test(`sbm ${args.join(' ') || '(no command)'} --help breaks lines only between words`, async (t) => {
    const wide = await help(args, 120);
    // (At 60 columns a word longer than the description column, e.g. DEST/NAME/<time>.sparsebundle,
    // has to be cut; from 80 up none is.)
    for (const columns of [80, 100]) {
      const narrow = await help(args, columns);
      for (const line of narrow.split('\n')) t.true(line.length <= columns, `${columns} columns: ${line}`);
      t.deepEqual(words(narrow), words(wide), `the same words at ${columns} and 120 columns`);
    }
  });
}

test('the word check catches a word cut in two', (t) => {
  t.notDeepEqual(words('print a shell completion script'), words('print a shell co\nmpletion script'));
});

test('every positional of every command is described', async (t) => {
  for (const name of Object.keys(COMMAND_LOADERS)) {
    const text = await help([name], 120);
    t.notRegex(text, /\[default: "?\d{6,}/, `sbm ${name}: a size default in bytes (show it as 8M)`);
    const section = /\nPositionals:\n([\s\S]*?)\n\n/.exec(text)?.[1] ?? '';
    for (const line of section.split('\n').filter((entry) => /^ {2}\S/.test(entry))) {
      // "  name  description   [string] [required]": some text between the name and the tags.
      t.regex(line, /^ {2}\S+ +[^[\s]/, `sbm ${name}: ${line.trim()}`);
    }
  }
});

test('size defaults read as sizes, and sbm --help names exit codes and DEBUG', async (t) => {
  for (const name of ['create', 'convert']) {
    const text = await help([name], 120);
    t.regex(text, /--band-size[^\n]*\[default: 8M\]/, name);
    t.notRegex(text, /8388608/, name);
  }
  const main = await help([], 80);
  t.regex(main.replace(/\s+/g, ' '), /Exit status: 0 ok, 1 failed, 2 bad usage/);
  t.regex(main, /DEBUG=sbm:\*/);
  t.regex(main.replace(/\s+/g, ' '), /10 full backup required/);
});
