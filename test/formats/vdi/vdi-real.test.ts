// A differencing VDI written by VirtualBox ("<<< Oracle VM VirtualBox Disk Image >>>", image type 4)
// over a base made by qemu-img, both from bwLehrpool/master-sync-shared's test resources
// (test/fixtures/bwlehrpool/). qemu-img refuses the child ("unsupported VDI image (non-NULL link
// UUID)"), so it checks the parent: the child allocates no block, so the disk must equal its parent
// as qemu-img reads it (qemu-img compare), found by the parent UUID VirtualBox recorded.

import test from 'ava';
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { REPO_ROOT, requireTool, runSbm, tempDir } from '../../helpers/tools.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'bwlehrpool');

test("VirtualBox's differencing VDI resolves its parent by UUID and reads as the parent qemu-img reads", async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  for (const name of ['image-default.vdi', 'image-default_snapshot.vdi'])
    await writeFile(join(dir, name), gunzipSync(await readFile(join(FIXTURES, `${name}.gz`))));
  const child = join(dir, 'image-default_snapshot.vdi');
  t.regex((await readFile(child)).toString('latin1', 0, 64), /Oracle VM VirtualBox Disk Image/);

  const info = await runSbm(['info', child, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  const details = JSON.parse(info.stdout) as Record<string, unknown>;
  t.is(details.subformat, 'differencing');
  t.is(details.sizeBytes, 1024 ** 3);
  t.is(details.parentUuid, '45ec18d9-39c5-4079-8de1-e36437901627');
  t.deepEqual(details.chain, [
    { file: join(dir, 'image-default.vdi'), subformat: 'dynamic', uuid: '45ec18d9-39c5-4079-8de1-e36437901627' },
  ]);
  t.deepEqual(details.warnings, []);
  const refused = await execa('qemu-img', ['info', child], { reject: false });
  t.not(refused.exitCode, 0, 'qemu-img does not read VirtualBox differencing images');

  const bundle = join(dir, 'disk.sparsebundle');
  const converted = await runSbm(['convert', child, bundle, '--no-progress']);
  t.is(converted.exitCode, 0, converted.stderr);
  const raw = join(dir, 'sbm.raw');
  const exported = await runSbm(['export', bundle, raw, '--format', 'raw']);
  t.is(exported.exitCode, 0, exported.stderr);
  const compared = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'vdi', raw, join(dir, 'image-default.vdi')], { reject: false });
  t.is(compared.exitCode, 0, compared.stdout + compared.stderr);
});
