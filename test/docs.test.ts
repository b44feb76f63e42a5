// The README is the reference users read: it must list every error code with its exit status,
// and its Quick start must name files that exist.

import test from 'ava';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ERROR_CODES } from '../lib/errors.js';
import { REPO_ROOT } from './helpers/tools.js';

test('README lists every error code with its exit status', async (t) => {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const missing = Object.entries(ERROR_CODES)
    .filter(([code, info]) => !readme.includes(`| \`${code}\` | ${info.exitCode} |`))
    .map(([code, info]) => `${code} (exit ${info.exitCode})`);
  t.deepEqual(missing, [], 'codes missing from the README table, or listed with another exit status');
});

test('README Quick start has two commands whose sample image and scripts exist', async (t) => {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const quickStart = readme.split('## Quick start')[1]?.split('\n## ')[0] ?? '';
  const commands = [...quickStart.matchAll(/```sh\n([^\n]+)\n```/g)].map((match) => match[1] ?? '');
  t.is(commands.length, 2);
  for (const path of commands.join(' ').match(/(?:images|scripts)\/[\w./-]+/g) ?? []) {
    await t.notThrowsAsync(access(join(REPO_ROOT, path)), path);
  }
  t.regex(commands[1] ?? '', /npm test$/);
});
