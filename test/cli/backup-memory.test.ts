// A backup holds a bounded number of bands in memory whatever the number of changed bands: the
// band buffers live in shared memory (so a hash worker reads them without a copy), which V8 does
// not count toward collecting, so each must be reused rather than dropped.

import test from 'ava';
import { execa } from 'execa';
import { randomFillSync } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { SBM_BIN, runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

test('a backup of 64 changed bands of 1 to 8 MiB peaks far below the 288 MiB they hold', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'disk.sparsebundle');
  t.is((await runSbm(['create', source, '--size', '512M'])).exitCode, 0);
  const bundle = await SparseBundle.open(source);
  // Band files of every size from 1 to 8 MiB (a band file ends at its last written byte), so
  // buffers sized for one band must serve the next.
  const data = Buffer.alloc(8 * MIB);
  for (let band = 0; band < 64; band++) await bundle.write(band * 8 * MIB, randomFillSync(data.subarray(0, ((band % 8) + 1) * MIB)));
  await bundle.close();
  // The process reports its own peak resident size as it exits (kilobytes, getrusage).
  const peakFile = join(dir, 'peak-rss');
  const preload = join(dir, 'peak-rss.cjs');
  await writeFile(
    preload,
    `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(peakFile)}, String(process.resourceUsage().maxRSS)));\n`,
  );
  const run = await execa('node', ['--require', preload, SBM_BIN, 'backup', source, join(dir, 'backups'), '--no-progress'], {
    reject: false,
  });
  t.is(run.exitCode, 0, run.stderr);
  t.regex(run.stdout, /64 bands copied/);
  const peakMiB = Number(await readFile(peakFile, 'utf8')) / 1024;
  t.true(peakMiB > 0);
  t.true(peakMiB < 160, `peak RSS ${peakMiB.toFixed(0)} MiB`);
});
