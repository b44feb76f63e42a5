// Every code that can reach a user is in one of the README's tables (Warnings, Error codes, or the
// check findings), so a script writer can look up any code sbm prints. This test reads every
// source file of lib/, formats/, cli/ and api/, takes each `SBM_...` word that is not the name of
// a constant declared in the sources (NBD limits such as SBM_MAX_OPTIONS), and requires a table
// row `| \`SBM_X\` |` for it. A new code fails here until its row is added.

import test from 'ava';
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../helpers/tools.js';

const FOLDERS = ['lib', 'formats', 'cli', 'api'];
const CODE_WORD = /\bSBM_[A-Z][A-Z0-9_]*\b/g;
const DECLARED_CONSTANT = /\b(?:const|let|var)\s+(SBM_[A-Z][A-Z0-9_]*)\b/g;

async function sourceFiles(): Promise<Array<{ path: string; text: string }>> {
  const files: Array<{ path: string; text: string }> = [];
  for (const folder of FOLDERS) {
    const entries = await readdir(join(REPO_ROOT, folder), { recursive: true, withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
      const path = join(entry.parentPath, entry.name);
      files.push({ path: relative(REPO_ROOT, path), text: await readFile(path, 'utf8') });
    }
  }
  return files;
}

/** Codes used in `files` (code → first file naming it), constants left out. */
function codesIn(files: ReadonlyArray<{ path: string; text: string }>): Map<string, string> {
  const constants = new Set<string>();
  for (const { text } of files) for (const match of text.matchAll(DECLARED_CONSTANT)) constants.add(match[1] as string);
  const codes = new Map<string, string>();
  for (const { path, text } of files) {
    for (const [word] of text.matchAll(CODE_WORD)) if (!constants.has(word) && !codes.has(word)) codes.set(word, path);
  }
  return codes;
}

/** Codes that have a table row in `readme`. */
function tableCodes(readme: string): Set<string> {
  return new Set([...readme.matchAll(/^\|\s*`(SBM_[A-Z0-9_]+)`\s*\|/gm)].map((match) => match[1] as string));
}

test('the scanner finds codes in strings and templates and leaves declared constants out', (t) => {
  const codes = codesIn([
    { path: 'a.ts', text: "throw new SbmError('SBM_ONE', 'x');\nwrite(`sbm: warning SBM_TWO: %s`);" },
    { path: 'b.ts', text: 'export const SBM_LIMIT = 64;\nif (n > C.SBM_LIMIT) warn({ code: "SBM_THREE" });' },
  ]);
  t.deepEqual([...codes.keys()].sort(), ['SBM_ONE', 'SBM_THREE', 'SBM_TWO']);
  t.deepEqual([...tableCodes('| `SBM_ONE` | 1 | x |\nsee `SBM_TWO` in prose\n| `SBM_THREE` | y |')].sort(), ['SBM_ONE', 'SBM_THREE']);
});

test("every code sbm can print has a row in one of the README's tables", async (t) => {
  const codes = codesIn(await sourceFiles());
  t.true(codes.size > 40, `found only ${codes.size} codes: is the scan broken?`);
  const rows = tableCodes(await readFile(join(REPO_ROOT, 'README.md'), 'utf8'));
  const missing = [...codes].filter(([code]) => !rows.has(code)).map(([code, path]) => `${code} (${path})`);
  t.deepEqual(missing, [], 'add a row for each to the README (Warnings, Error codes or check findings)');
});
