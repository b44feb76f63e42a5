// The sample disks in images/ are the ones the manifest names, byte for byte.

import test from 'ava';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from './helpers/tools.js';

test('images/SHA256SUMS matches every sample image', async (t) => {
  const manifest = await readFile(join(REPO_ROOT, 'images', 'SHA256SUMS'), 'utf8');
  const lines = manifest.trim().split('\n');
  t.true(lines.length >= 1);
  for (const line of lines) {
    const [expected = '', name = ''] = line.split(/\s+/);
    const actual = createHash('sha256')
      .update(await readFile(join(REPO_ROOT, 'images', name)))
      .digest('hex');
    t.is(actual, expected, name);
  }
});
