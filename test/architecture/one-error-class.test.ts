// One error class: every failure sbm raises is an SbmError with a stable code (lib/errors.ts,
// README's error table). A bare Error, RangeError or TypeError has no code, so the CLI can only
// call it a bug and scripts cannot match on it. This test reads every source file of lib/,
// formats/ and cli/ and fails on any construct that makes one.

import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../helpers/tools.js';

const FOLDERS = ['lib', 'formats', 'cli'];

/** `new Error(`, `new RangeError(`, `new TypeError(`, and the same called without `new`. */
const BARE_ERROR = /\b(?:new\s+(?:Error|RangeError|TypeError)\s*\(|throw\s+(?:Error|RangeError|TypeError)\s*\()/;

/** Lines of code that make a bare error, as `path:line: text`; comment lines are skipped. */
function bareErrors(path: string, text: string): string[] {
  const found: string[] = [];
  text.split('\n').forEach((line, index) => {
    const code = line.trim();
    if (code.startsWith('//') || code.startsWith('*') || code.startsWith('/*')) return;
    if (BARE_ERROR.test(code)) found.push(`${path}:${index + 1}: ${code}`);
  });
  return found;
}

test('the detector finds each construct and leaves SbmError and comments alone', (t) => {
  const sample = [
    "throw new Error('a');",
    'reject(new RangeError(`b`));',
    'const e = new TypeError ("c");',
    "throw Error('d');",
    "throw new SbmError('SBM_INTERNAL', 'e');",
    '// new Error( in a comment',
    'const isError = value instanceof Error;',
  ].join('\n');
  t.deepEqual(
    bareErrors('x.ts', sample).map((hit) => hit.split(':')[1]),
    ['1', '2', '3', '4'],
  );
});

test('lib/, formats/ and cli/ raise only SbmError', async (t) => {
  const found: string[] = [];
  let files = 0;
  for (const folder of FOLDERS) {
    const entries = await readdir(join(REPO_ROOT, folder), { recursive: true, withFileTypes: true });
    for (const entry of entries) {
      if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
      const path = join(entry.parentPath, entry.name);
      files++;
      found.push(...bareErrors(relative(REPO_ROOT, path), await readFile(path, 'utf8')));
    }
  }
  t.true(files > 50, `read ${files} source files`);
  t.deepEqual(found, [], 'use SbmError with a code from lib/errors.ts (SBM_INTERNAL for a broken invariant)');
});
