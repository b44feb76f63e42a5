// One mechanism for binary structures: layouts are declared with lib/binary-layout.ts and
// checksums come from lib/checksums.ts. A second CRC table (its polynomial in another file) or a
// second table mechanism would let two readers of one format drift apart, so this test fails on
// either in lib/, formats/ and cli/.

import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../helpers/tools.js';

const FOLDERS = ['lib', 'formats', 'cli'];

/** What marks a private copy, and the one file allowed to hold it. */
const RULES: ReadonlyArray<{ readonly what: string; readonly pattern: RegExp; readonly home: string }> = [
  { what: 'a CRC-32 or CRC-32C polynomial', pattern: /0x(?:edb88320|82f63b78)\b/i, home: 'lib/checksums.ts' },
  {
    what: 'a table mechanism',
    pattern: /\b(?:class\s+(?:BinaryTable|BinaryLayout)\b|function\s+(?:defineTable|defineLayout)\b)/,
    home: 'lib/binary-layout.ts',
  },
];

async function sources(): Promise<Array<{ path: string; text: string }>> {
  const out: Array<{ path: string; text: string }> = [];
  for (const folder of FOLDERS) {
    const entries = await readdir(join(REPO_ROOT, folder), { recursive: true, withFileTypes: true });
    for (const entry of entries) {
      if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
      const path = join(entry.parentPath, entry.name);
      out.push({ path: relative(REPO_ROOT, path), text: await readFile(path, 'utf8') });
    }
  }
  return out;
}

test('CRC tables live only in lib/checksums.ts and layouts only in lib/binary-layout.ts', async (t) => {
  const files = await sources();
  t.true(files.length > 50, `read ${files.length} source files`);
  for (const rule of RULES) {
    const holders = files.filter((file) => rule.pattern.test(file.text)).map((file) => file.path);
    t.deepEqual(holders, [rule.home], `${rule.what} belongs in ${rule.home} only`);
  }
});
