// Round trips through sbm's NBD server with nbdcopy, qemu-img convert and nbdkit's verifying
// sparse-random plugin: what goes in comes back out byte for byte, and zero runs stay holes.

import test from 'ava';
import { execa } from 'execa';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

import { requireTool, seededBytes, tempDir } from '../helpers/tools.js';
import { MIB, serveBundle } from '../lib/nbd/interop-kit.js';

const SIZE = 48 * MIB;

/** A raw image with random data in some places (one spanning a band edge) and zeros elsewhere. */
async function makeRaw(path: string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.truncate(SIZE);
    await handle.write(seededBytes(3 * MIB, 11), 0, 3 * MIB, 2 * MIB);
    await handle.write(seededBytes(2 * MIB, 12), 0, 2 * MIB, 15 * MIB); // crosses the 16 MiB band edge
    await handle.write(seededBytes(4096 + 17, 13), 0, 4096 + 17, 40 * MIB + 5);
  } finally {
    await handle.close();
  }
}

test('nbdcopy a raw image in and back out; qemu-img compare equal; zero bands stay missing', async (t) => {
  await requireTool(t, 'nbdcopy');
  await requireTool(t, 'qemu-img');
  const { server, bundle, dir } = await serveBundle(t, SIZE);
  const source = join(dir, 'source.raw');
  const copy = join(dir, 'copy.raw');
  await makeRaw(source);
  await execa('nbdcopy', ['--flush', source, server.uri]);
  await execa('nbdcopy', [server.uri, copy]);
  t.is((await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, copy], { reject: false })).exitCode, 0);
  t.is((await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, server.uri], { reject: false })).exitCode, 0);
  t.deepEqual(bundle.bandsPresent(), [0, 1, 2, 5]);
});

test('nbdcopy with one connection and one request in flight, and --synchronous', async (t) => {
  await requireTool(t, 'nbdcopy');
  await requireTool(t, 'qemu-img');
  const { server, dir } = await serveBundle(t, SIZE);
  const source = join(dir, 'source.raw');
  await makeRaw(source);
  await execa('nbdcopy', ['-C', '1', '-R', '1', source, server.uri]);
  const back = join(dir, 'back.raw');
  await execa('nbdcopy', ['--synchronous', server.uri, back]);
  t.is((await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, back], { reject: false })).exitCode, 0);
});

test('qemu-img convert to and from the server', async (t) => {
  await requireTool(t, 'qemu-img');
  const { server, dir } = await serveBundle(t, SIZE);
  const source = join(dir, 'source.raw');
  await makeRaw(source);
  await execa('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', source, server.uri]);
  const out = join(dir, 'out.qcow2');
  await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', server.uri, out]);
  t.is((await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', source, out], { reject: false })).exitCode, 0);
  t.is((await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, server.uri], { reject: false })).exitCode, 0);
});

test('nbdkit sparse-random as source and verifying sink: nothing changes on the way through', async (t) => {
  await requireTool(t, 'nbdkit');
  await requireTool(t, 'nbdcopy');
  const { server } = await serveBundle(t, 128 * MIB);
  const scratch = await tempDir(t);
  // --run makes nbdkit exit when the script ends; a differing write to sparse-random fails with EIO.
  const script = `nbdcopy "$uri" '${server.uri}' && nbdcopy '${server.uri}' "$uri"`;
  const result = await execa('nbdkit', ['-U', '-', 'sparse-random', 'size=128M', 'seed=42', '--run', script], {
    cwd: scratch,
    reject: false,
  });
  t.is(result.exitCode, 0, result.stderr);
});
