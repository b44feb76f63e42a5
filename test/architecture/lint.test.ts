// The house rules a formatter cannot enforce alone: Biome (biome.json) formats and lints the whole
// tree, and this test runs it as CI does, so a violation fails `npm test`. Biome wraps code at 140
// columns but leaves long strings and comments alone; the width check here covers them too.

import test from 'ava';
import { execa } from 'execa';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../helpers/tools.js';

const LINE_WIDTH = 140;
const MAX_FILE_LINES = 450;
const SOURCE_FOLDERS = ['api', 'lib', 'cli', 'formats', 'test', 'scripts'];

async function sourceFiles(): Promise<string[]> {
  const files: string[] = [];
  for (const folder of SOURCE_FOLDERS) {
    const entries = await readdir(join(REPO_ROOT, folder), { recursive: true, withFileTypes: true });
    for (const entry of entries) {
      if (entry.isFile() && entry.name.endsWith('.ts')) files.push(relative(REPO_ROOT, join(entry.parentPath, entry.name)));
    }
  }
  return files;
}

test('biome ci reports no formatting or lint violation', async (t) => {
  const result = await execa(join(REPO_ROOT, 'node_modules', '.bin', 'biome'), ['ci', '--colors=off', '.'], {
    cwd: REPO_ROOT,
    reject: false,
  });
  t.is(result.exitCode, 0, `${result.stdout}\n${result.stderr}`.slice(-4000));
});

test(`no source line is wider than ${LINE_WIDTH} columns and no source file has ${MAX_FILE_LINES} lines or more`, async (t) => {
  const files = await sourceFiles();
  t.true(files.length > 100, 'the scan found the sources');
  const wide: string[] = [];
  const long: string[] = [];
  for (const file of files) {
    const text = await readFile(join(REPO_ROOT, file), 'utf8');
    const lines = text.split('\n');
    const lineCount = text.endsWith('\n') ? lines.length - 1 : lines.length;
    if (lineCount >= MAX_FILE_LINES) long.push(`${file}: ${lineCount} lines`);
    lines.forEach((line, index) => {
      if (line.length > LINE_WIDTH) wide.push(`${file}:${index + 1}: ${line.length} columns`);
    });
  }
  t.deepEqual(wide, []);
  t.deepEqual(long, []);
});
