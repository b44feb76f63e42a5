// The one-way flow of ARCHITECTURE.md: cli -> lib + formats, formats -> lib, lib -> nothing of ours;
// inside lib/, each folder has a rank and imports only its own rank or lower, and no file takes
// part in an import circle.

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

/** Repository-relative .ts paths a file imports (type-only imports included: they tie files too). */
async function importsOf(file: string): Promise<string[]> {
  const text = await readFile(join(REPO_ROOT, file), 'utf8');
  return [...text.matchAll(IMPORT)].map((match) =>
    relative(REPO_ROOT, resolve(REPO_ROOT, dirname(file), match[1] ?? '')).replace(/\.js$/, '.ts'),
  );
}

const ALLOWED: Record<string, string[]> = {
  lib: ['lib'],
  formats: ['formats', 'lib'],
  cli: ['cli', 'lib', 'formats'],
  api: ['api', 'lib', 'formats'],
};

/**
 * Layers inside lib/, lowest first. The root files (errors, block-device, warnings, ...) and fs/
 * are the base; a folder may import its own rank or lower, never higher.
 */
const LIB_RANKS: Record<string, number> = {
  lib: 0,
  'lib/fs': 0,
  'lib/bundle': 1,
  'lib/nbd': 1,
  'lib/tracking': 2,
  'lib/engine': 3,
  'lib/snapshots': 4,
  'lib/session': 5,
  'lib/backup': 6,
  'lib/backup/s3': 6,
  'lib/convert': 6,
  'lib/sync': 6,
  'lib/control': 7,
};

test('imports flow cli -> lib + formats, formats -> lib, and lib imports nothing of ours', async (t) => {
  let checked = 0;
  for (const [layer, allowed] of Object.entries(ALLOWED)) {
    for (const file of await sourceFiles(layer)) {
      for (const target of await importsOf(file)) {
        const targetLayer = target.split('/')[0] ?? '';
        checked++;
        t.true(allowed.includes(targetLayer), `${file} imports ${target} (${targetLayer}/), which ${layer}/ must not`);
      }
    }
  }
  t.true(checked > 20, 'the import scan found the imports');
});

test('inside lib/, every folder has a rank and imports only its own rank or lower', async (t) => {
  let checked = 0;
  for (const file of await sourceFiles('lib')) {
    const rank = LIB_RANKS[dirname(file)];
    t.not(rank, undefined, `${dirname(file)}/ has no rank in LIB_RANKS (give it one before adding files there)`);
    if (rank === undefined) continue;
    for (const target of await importsOf(file)) {
      const targetRank = LIB_RANKS[dirname(target)];
      checked++;
      t.true(
        targetRank !== undefined && targetRank <= rank,
        `${file} (rank ${rank}) imports ${target} (rank ${targetRank}): a lower layer must not import a higher one`,
      );
    }
  }
  t.true(checked > 100, 'the import scan found the lib/ imports');
});

test('no import circle between files of lib/', async (t) => {
  const graph = new Map<string, string[]>();
  for (const file of await sourceFiles('lib')) graph.set(file, await importsOf(file));
  t.deepEqual(circles(graph), [], 'files that import each other, directly or through others');
  // The detector itself finds a circle.
  t.deepEqual(
    circles(
      new Map([
        ['a', ['b']],
        ['b', ['c']],
        ['c', ['a']],
        ['d', ['a']],
      ]),
    ),
    [['a', 'b', 'c']],
  );
});

/** Strongly connected components of more than one file (Tarjan), each sorted. */
function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, next);
    low.set(node, next);
    next++;
    stack.push(node);
    onStack.add(node);
    for (const target of graph.get(node) ?? []) {
      if (!graph.has(target)) continue;
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node) ?? 0, low.get(target) ?? 0));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node) ?? 0, index.get(target) ?? 0));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string | undefined;
    do {
      member = stack.pop();
      if (member === undefined) break;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1) found.push(component.sort());
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}
