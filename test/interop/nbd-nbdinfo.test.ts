// nbdinfo, qemu-img and qemu-nbd --list against sbm's NBD server: what the handshake advertises,
// and block status showing holes exactly where bands are missing.

import test from 'ava';
import { execa } from 'execa';

import { requireTool, seededBytes } from '../helpers/tools.js';
import { MIB, serveBundle } from '../lib/nbd/interop-kit.js';

const SIZE = 64 * MIB;

test('nbdinfo --json reports size, flags, block sizes and base:allocation', async (t) => {
  await requireTool(t, 'nbdinfo');
  const { server } = await serveBundle(t, SIZE, { name: 'vm' });
  const { stdout } = await execa('nbdinfo', ['--json', server.uri]);
  const info = JSON.parse(stdout) as { protocol: string; structured: boolean; exports: Array<Record<string, unknown>> };
  t.is(info.protocol, 'newstyle-fixed');
  t.true(info.structured);
  const [vm] = info.exports;
  t.like(vm, {
    'export-name': 'vm',
    'export-size': SIZE,
    is_read_only: false,
    can_flush: true,
    can_fua: true,
    can_trim: true,
    can_zero: true,
    can_fast_zero: true,
    can_df: true,
    can_multi_conn: true,
    can_cache: true,
    block_size_minimum: 1,
    block_size_preferred: 4096,
    block_size_maximum: 32 * MIB,
  });
  t.deepEqual(vm?.contexts, ['base:allocation']);
});

test('nbdinfo --map and qemu-img map show holes where bands are missing', async (t) => {
  await requireTool(t, 'nbdinfo');
  await requireTool(t, 'qemu-img');
  const { server, bundle } = await serveBundle(t, SIZE, {
    prepare: async (disk) => {
      await disk.write(8 * MIB, seededBytes(8 * MIB, 1)); // band 1 whole
      await disk.write(40 * MIB, seededBytes(MIB, 2)); // first MiB of band 5
    },
  });
  t.deepEqual(bundle.bandsPresent(), [1, 5]);
  const { stdout } = await execa('nbdinfo', ['--map', '--json', server.uri]);
  const map = (JSON.parse(stdout) as Array<{ offset: number; length: number; type: number }>).map(({ offset, length, type }) => ({
    offset,
    length,
    type,
  }));
  t.deepEqual(map, [
    { offset: 0, length: 8 * MIB, type: 3 },
    { offset: 8 * MIB, length: 8 * MIB, type: 0 },
    { offset: 16 * MIB, length: 24 * MIB, type: 3 },
    { offset: 40 * MIB, length: MIB, type: 0 },
    { offset: 41 * MIB, length: 23 * MIB, type: 3 },
  ]);
  const qemu = await execa('qemu-img', ['map', '-f', 'raw', '--output=json', server.uri]);
  const runs = (JSON.parse(qemu.stdout) as Array<{ start: number; length: number; data: boolean; zero: boolean }>).map(
    ({ start, length, data, zero }) => ({ start, length, data, zero }),
  );
  t.deepEqual(runs, [
    { start: 0, length: 8 * MIB, data: false, zero: true },
    { start: 8 * MIB, length: 8 * MIB, data: true, zero: false },
    { start: 16 * MIB, length: 24 * MIB, data: false, zero: true },
    { start: 40 * MIB, length: MIB, data: true, zero: false },
    { start: 41 * MIB, length: 23 * MIB, data: false, zero: true },
  ]);
});

test('nbdinfo --list, --can/--is, qemu-nbd --list and qemu-img info agree on a read-only export', async (t) => {
  await requireTool(t, 'nbdinfo');
  await requireTool(t, 'qemu-nbd');
  await requireTool(t, 'qemu-img');
  const { server } = await serveBundle(t, SIZE, { name: 'ro', readOnly: true });
  const list = await execa('nbdinfo', ['--list', '--json', server.uri]);
  const exports = (JSON.parse(list.stdout) as { exports: Array<Record<string, unknown>> }).exports;
  t.is(exports.length, 1);
  t.like(exports[0], { 'export-name': 'ro', is_read_only: true, can_trim: false, can_zero: false });
  t.is((await execa('nbdinfo', ['--is', 'read-only', server.uri], { reject: false })).exitCode, 0);
  t.is((await execa('nbdinfo', ['--can', 'write', server.uri], { reject: false })).exitCode, 2);
  t.is((await execa('nbdinfo', ['--can', 'multi-conn', server.uri], { reject: false })).exitCode, 0);
  const qemuList = await execa('qemu-nbd', ['--list', '-k', server.socketPath as string]);
  t.regex(qemuList.stdout, /export: 'ro'/);
  t.regex(qemuList.stdout, /size:\s+67108864/);
  t.regex(qemuList.stdout, /base:allocation/);
  const info = await execa('qemu-img', ['info', '-f', 'raw', '--output=json', server.uri]);
  t.is((JSON.parse(info.stdout) as { 'virtual-size': number })['virtual-size'], SIZE);
});
