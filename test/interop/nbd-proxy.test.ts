// nbdkit's nbd plugin in front of sbm: a strict libnbd client that checks every reply sbm sends,
// with the log filter recording each request, while qemu-io and nbdcopy drive traffic through it.

import test from 'ava';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { requireTool } from '../helpers/tools.js';
import { MIB, serveBundle } from '../lib/nbd/interop-kit.js';

test('nbdkit nbd proxy (strict libnbd) logs clean READ/WRITE/BLOCK_STATUS traffic through sbm', async (t) => {
  await requireTool(t, 'nbdkit');
  await requireTool(t, 'qemu-io');
  await requireTool(t, 'nbdinfo');
  const { server, dir } = await serveBundle(t, 32 * MIB);
  const log = join(dir, 'nbd.log');
  const script = [
    `qemu-io -f raw -c 'write -P 5 1M 64k' -c 'read -P 5 1M 64k' -c 'write -z 8M 8M' -c 'flush' "$uri"`,
    `nbdinfo --map "$uri"`,
  ].join(' && ');
  const result = await execa(
    'nbdkit',
    ['-U', '-', 'nbd', `socket=${server.socketPath}`, '--filter=log', `logfile=${log}`, '--run', script],
    { reject: false },
  );
  t.is(result.exitCode, 0, result.stderr);
  t.notRegex(result.stdout + result.stderr, /fail|mismatch/i);
  t.regex(result.stdout, /hole,zero/);
  const text = await readFile(log, 'utf8');
  if (process.env.SHOW_LOG) console.log(text);
  for (const command of ['Write', 'Read', 'Zero', 'Flush', 'Extents'])
    t.regex(text, new RegExp(`\\b${command}\\b`), `${command} went through the proxy`);
  t.notRegex(text, /return=-?[1-9]/, 'no request failed');
});
