// Delta chains (qemu-img create -b): reads fall through to the parent, zeroed grains (GTE 1) read
// as zeros without asking the parent, and a parentCID that does not match warns.

import test from 'ava';
import { execa } from 'execa';
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { openVmdk as openImage } from '../../../formats/vmdk/open-vmdk.js';
import type { SbmWarning } from '../../../lib/warnings.js';
import { isSbmError } from '../../../lib/errors.js';
import { requireTool, tempDir } from '../../helpers/tools.js';
import { MiB, compareAllBytes, kindAt, qemuCompare, qemuImg, sbmToRaw } from './vmdk-test-kit.js';

async function qemuIo(file: string, ...commands: string[]): Promise<void> {
  await execa('qemu-io', ['-f', 'vmdk', ...commands.flatMap((command) => ['-c', command]), file]);
}

/** The reference's §9.2 recipe: a zeroed_grain child over a base full of 0x11. */
async function makeChain(dir: string): Promise<{ base: string; child: string }> {
  const base = join(dir, 'base.vmdk');
  const child = join(dir, 'child.vmdk');
  await qemuImg(['create', '-q', '-f', 'vmdk', base, '16M']);
  await qemuIo(base, 'write -P 0x11 0 16M');
  await qemuImg(['create', '-q', '-f', 'vmdk', '-o', 'zeroed_grain=on', '-b', base, '-F', 'vmdk', child]);
  await qemuIo(child, 'write -z 1M 128k', 'write -z 3000 1000', 'write -P 0x22 4M 64k');
  return { base, child };
}

test('zeroed grains read as zeros over parent data; reads fall through elsewhere', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const { child } = await makeChain(dir);
  const reference = join(dir, 'reference.raw');
  await qemuImg(['convert', '-f', 'vmdk', '-O', 'raw', child, reference]);
  const warnings: SbmWarning[] = [];
  const image = await openImage(child, { onWarning: (warning) => warnings.push(warning) });
  t.teardown(() => image.close());
  await compareAllBytes(t, image, reference);
  t.is(await kindAt(image, MiB), 'zero', 'GTE 1 is a zero extent');
  t.is(await kindAt(image, MiB + 64 * 1024), 'zero');
  t.is(await kindAt(image, 4 * MiB), 'data');
  t.is(await kindAt(image, 8 * MiB), 'data', 'parent data shows through');
  t.true((await image.read(MiB, 128 * 1024)).equals(Buffer.alloc(128 * 1024)));
  t.is((await image.read(8 * MiB, 1))[0], 0x11);
  const details = await image.details();
  t.is((details.chain as unknown[]).length, 2);
  t.deepEqual(warnings, []);
  const out = join(dir, 'sbm.raw');
  await sbmToRaw(image, out);
  await qemuCompare(t, out, 'raw', child, 'vmdk');
});

test('parentCID mismatch warns and names both files', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const { child } = await makeChain(dir);
  const bytes = await readFile(child);
  const at = bytes.indexOf('parentCID=');
  t.true(at > 0);
  // qemu-img writes the CID without leading zeros: keep the length, change every digit, so the
  // line after it stays intact whatever CID this run drew.
  const start = at + 'parentCID='.length;
  const original = /^[0-9a-f]+/.exec(bytes.subarray(start, start + 8).toString('latin1'))?.[0] ?? '';
  t.true(original.length > 0);
  const wrong = [...original].map((digit) => ((parseInt(digit, 16) + 1) % 16).toString(16)).join('');
  const handle = await open(child, 'r+');
  await handle.write(Buffer.from(wrong, 'latin1'), 0, wrong.length, start);
  await handle.close();
  const warnings: SbmWarning[] = [];
  const image = await openImage(child, { onWarning: (warning) => warnings.push(warning) });
  t.teardown(() => image.close());
  t.is(warnings.length, 1);
  t.is(warnings[0]?.code, 'SBM_VMDK_CID_MISMATCH');
  const details = await image.details();
  const named = parseInt(wrong, 16).toString(16).padStart(8, '0'); // warnings print 8 digits
  t.true(String((details.warnings as string[])[0]).includes(`parentCID ${named}`), 'the warning names the CID found');
});

test('a missing parent is SBM_NOT_FOUND naming the hint', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const { base, child } = await makeChain(dir);
  await rename(base, join(dir, 'elsewhere.vmdk'));
  const error = await t.throwsAsync(openImage(child));
  t.true(isSbmError(error, 'SBM_NOT_FOUND'), String(error));
  t.regex(String(error?.message), /parent ".*base\.vmdk" not found/);
});

test('a plain qemu delta child (no zeroed grains) matches qemu-img', async (t) => {
  await requireTool(t, 'qemu-img');
  await requireTool(t, 'qemu-io');
  const dir = await tempDir(t);
  const base = join(dir, 'base.vmdk');
  const child = join(dir, 'child.vmdk');
  await qemuImg(['create', '-q', '-f', 'vmdk', base, '24M']);
  await qemuIo(base, 'write -P 0x31 0 2M', 'write -P 0x32 20M 1M');
  await qemuImg(['create', '-q', '-f', 'vmdk', '-b', base, '-F', 'vmdk', child]);
  await qemuIo(child, 'write -P 0x41 1M 2M', 'write -P 0x42 10M 64k');
  const reference = join(dir, 'reference.raw');
  await qemuImg(['convert', '-f', 'vmdk', '-O', 'raw', child, reference]);
  const image = await openImage(child);
  t.teardown(() => image.close());
  await compareAllBytes(t, image, reference);
  t.is(await kindAt(image, 5 * MiB), 'hole');
  t.is(await kindAt(image, 20 * MiB), 'data');
});
