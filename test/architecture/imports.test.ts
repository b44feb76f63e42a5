// The one-way flow of ARCHITECTURE.md: cli -> lib + formats, formats -> lib, lib -> nothing of ours.

import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, resolve, dirname } from 'node:path';
import { REPO_ROOT } from '../helpers/tools.js';

async function sourceFiles(folder: string): Promise<string[]> {
  const entries = await readdir(join(REPO_ROOT, folder), { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => relative(REPO_ROOT, join(entry.parentPath, entry.name)));
}

const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/gm;

const ALLOWED: Record<string, string[]> = {
  lib: ['lib'],
  formats: ['formats', 'lib'],
  cli: ['cli', 'lib', 'formats'],
};

test('imports flow cli -> lib + formats, formats -> lib, and lib imports nothing of ours', async (t) => {
  let checked = 0;
  for (const [layer, allowed] of Object.entries(ALLOWED)) {
    for (const file of await sourceFiles(layer)) {
      const text = await readFile(join(REPO_ROOT, file), 'utf8');
      for (const match of text.matchAll(IMPORT)) {
        const target = relative(REPO_ROOT, resolve(REPO_ROOT, dirname(file), match[1] ?? ''));
        const targetLayer = target.split('/')[0] ?? '';
        checked++;
        t.true(allowed.includes(targetLayer), `${file} imports ${match[1]} (${targetLayer}/), which ${layer}/ must not`);
      }
    }
  }
  t.true(checked > 20, 'the import scan found the imports');
});
