// Requests run against real devices: FAST_ZERO answered honestly per band, block status from
// band presence (REQ_ONE and not), and DF-free reads as one OFFSET_DATA chunk.

import test from 'ava';
import { join } from 'node:path';

import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import * as C from '../../../lib/nbd/constants.js';
import { canZeroFast } from '../../../lib/nbd/fast-zero.js';
import { runRequest } from '../../../lib/nbd/nbd-request-runner.js';
import type { NbdRequest } from '../../../lib/nbd/nbd-server-protocol.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';
import { parseReply } from './nbd-frames.js';

const MIB = 1024 * 1024;

async function bundle(t: import('ava').ExecutionContext): Promise<SparseBundle> {
  const dir = await tempDir(t);
  const disk = await SparseBundle.create(join(dir, 'b.sparsebundle'), { sizeBytes: 8 * MIB, bandSizeBytes: MIB });
  t.teardown(() => disk.close());
  await disk.write(MIB, seededBytes(MIB, 1)); // band 1 full
  await disk.write(3 * MIB + 4096, seededBytes(4096, 2)); // band 3, partial
  return disk;
}

function req(type: number, offset: number, length: number, flags = 0, extra: Partial<NbdRequest> = {}): NbdRequest {
  return { type, flags, cookie: 42n, offset, length, structured: true, metaContextId: C.SBM_BASE_ALLOCATION_ID, ...extra };
}

test('FAST_ZERO: whole bands and holes are fast, a partial band holding data is not', async (t) => {
  const disk = await bundle(t);
  t.true(await canZeroFast(disk, MIB, MIB), 'whole band 1');
  t.true(await canZeroFast(disk, 4 * MIB + 100, 2 * MIB), 'missing bands');
  t.true(await canZeroFast(disk, 3 * MIB, 4096), 'the hole before the data in band 3');
  t.false(await canZeroFast(disk, MIB + 512, 4096), 'inside band 1 data');
  t.true(await canZeroFast(disk, 3 * MIB, 2 * MIB), 'band 3 covered whole');
  t.false(await canZeroFast(disk, 3 * MIB + 4096, MIB), 'band 3 data, band not covered whole');
});

test('WRITE_ZEROES with FAST_ZERO replies ENOTSUP without touching data; without it, zeroes', async (t) => {
  const disk = await bundle(t);
  const slow = parseReply(
    await runRequest(disk, req(C.NBD_CMD_WRITE_ZEROES, MIB + 512, 4096, C.NBD_CMD_FLAG_FAST_ZERO, { structured: false })),
  );
  t.like(slow.reply, { kind: 'simple', error: C.NBD_ENOTSUP });
  t.true((await disk.read(MIB + 512, 4096)).equals(seededBytes(MIB, 1).subarray(512, 4608)));
  const fast = parseReply(await runRequest(disk, req(C.NBD_CMD_WRITE_ZEROES, MIB, MIB, C.NBD_CMD_FLAG_FAST_ZERO, { structured: false })));
  t.like(fast.reply, { kind: 'simple', error: 0 });
  t.false(disk.bandsPresent().includes(1), 'the whole band was deleted');
});

test('BLOCK_STATUS: HOLE|ZERO for missing bands, 0 for data; REQ_ONE gives one extent', async (t) => {
  const disk = await bundle(t);
  const all = parseReply(await runRequest(disk, req(C.NBD_CMD_BLOCK_STATUS, 0, 8 * MIB)));
  if (all.reply.kind !== 'chunk') return t.fail();
  t.is(all.reply.type, C.NBD_REPLY_TYPE_BLOCK_STATUS);
  t.is(all.reply.flags, C.NBD_REPLY_FLAG_DONE);
  const payload = all.reply.payload;
  t.is(payload.readUInt32BE(0), C.SBM_BASE_ALLOCATION_ID);
  const extents: Array<[number, number]> = [];
  for (let at = 4; at < payload.length; at += 8) extents.push([payload.readUInt32BE(at), payload.readUInt32BE(at + 4)]);
  t.deepEqual(extents, [
    [MIB, 3],
    [MIB, 0],
    [MIB + 4096, 3],
    [4096, 0],
    [8 * MIB - 3 * MIB - 8192, 3],
  ]);
  const one = parseReply(await runRequest(disk, req(C.NBD_CMD_BLOCK_STATUS, MIB / 2, 4 * MIB, C.NBD_CMD_FLAG_REQ_ONE)));
  if (one.reply.kind !== 'chunk') return t.fail();
  t.is(one.reply.payload.length, 12);
  t.deepEqual([one.reply.payload.readUInt32BE(4), one.reply.payload.readUInt32BE(8)], [MIB / 2, 3]);
});

test('READ replies: one OFFSET_DATA chunk when structured, simple reply + data otherwise', async (t) => {
  const device = new MemoryDevice(MIB, false, seededBytes(MIB, 3));
  const chunk = parseReply(await runRequest(device, req(C.NBD_CMD_READ, 1000, 3000, C.NBD_CMD_FLAG_DF)));
  if (chunk.reply.kind !== 'chunk') return t.fail();
  t.is(chunk.reply.type, C.NBD_REPLY_TYPE_OFFSET_DATA);
  t.is(chunk.reply.payload.readBigUInt64BE(0), 1000n);
  t.true(chunk.reply.payload.subarray(8).equals(seededBytes(MIB, 3).subarray(1000, 4000)));
  const simple = parseReply(await runRequest(device, req(C.NBD_CMD_READ, 0, 16, 0, { structured: false })), 0, 16);
  t.like(simple.reply, { kind: 'simple', error: 0, cookie: 42n });
  t.true(simple.data?.equals(seededBytes(16, 3)));
});
