// DEBUG=sbm:* tells what sbm is doing: the phases of convert, backup and changed-bands, and each
// NBD client's connect, negotiation and disconnect.

import test from 'ava';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SBM_BIN, requireTool, runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;
const DEBUG = { DEBUG: 'sbm:*' };

test('convert, backup and changed-bands log their phases', async (t) => {
  const dir = await tempDir(t);
  const raw = join(dir, 'disk.raw');
  await writeFile(raw, Buffer.concat([randomBytes(MIB), Buffer.alloc(MIB)]));
  const bundle = join(dir, 'disk.sparsebundle');
  const convert = await runSbm(['convert', raw, bundle, '--band-size', '1M'], { env: DEBUG });
  t.is(convert.exitCode, 0, convert.stderr);
  t.regex(convert.stderr, /sbm:convert convert to \S*disk\.sparsebundle: 2097152 bytes in 1048576-byte bands/);
  t.regex(convert.stderr, /sbm:convert copied: 2097152 bytes read/);
  t.regex(convert.stderr, /sbm:convert 1 band\(s\) durable; renaming into place/);

  const backup = await runSbm(['backup', bundle, join(dir, 'dest')], { env: DEBUG });
  t.is(backup.exitCode, 0, backup.stderr);
  for (const phase of [
    /locking the set/,
    /previous backup: none; freezing the source/,
    /frozen at /,
    /plan: full mode/,
    /writing the manifest/,
    /published /,
  ]) {
    t.regex(backup.stderr, new RegExp(`sbm:backup [^\\n]*${phase.source}`));
  }

  const token = (await runSbm(['token', bundle])).stdout.trim();
  const changed = await runSbm(['changed-bands', bundle, '--since', token], { env: DEBUG });
  t.is(changed.exitCode, 0, changed.stderr);
  t.regex(changed.stderr, /sbm:changed-bands changed-bands since sbm1:\S+: a token/);
  t.regex(changed.stderr, /sbm:changed-bands changed-bands: 0 band\(s\), next token sbm1:/);
});

test('a mount logs each NBD client connecting, negotiating and leaving', async (t) => {
  await requireTool(t, 'nbdinfo');
  const dir = await tempDir(t);
  const bundle = join(dir, 'vm.sparsebundle');
  t.is((await runSbm(['create', bundle, '--size', '4M'])).exitCode, 0);
  const socket = join(dir, 'nbd.sock');
  const mount = execa('node', [SBM_BIN, 'mount', bundle, '--socket', socket], { reject: false, env: { ...DEBUG, NO_COLOR: '1' } });
  t.teardown(() => {
    if (mount.exitCode === null) mount.kill('SIGKILL');
  });
  let stderr = '';
  mount.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const uri = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    mount.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('\n')) resolve(stdout.trim());
    });
    void mount.then(() => reject(new Error(`mount exited: ${stderr}`)));
  });
  const info = await execa('nbdinfo', ['--size', uri], { reject: false });
  t.is(info.stdout.trim(), String(4 * MIB), info.stderr);
  mount.kill('SIGTERM');
  await mount;
  t.regex(stderr, /sbm:nbd client connected: a Unix-socket client/);
  t.regex(stderr, /sbm:nbd negotiated with a Unix-socket client: \{[^}]*structuredReplies: (true|false)[^}]*options: \d+/);
  t.regex(stderr, /sbm:nbd client disconnected: a Unix-socket client after \d+ ms/);
});
