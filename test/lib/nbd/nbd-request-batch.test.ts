// Request batching: adjacent small READs/WRITEs received together become one device call, in any
// arrival order; overlapping writes, mixed FUA and big requests are left alone; a failing merged
// call is retried request by request so each gets its own answer. Unit level and over a socket.

import test from 'ava';

import type { WriteOptions } from '../../../lib/block-device.js';
import * as C from '../../../lib/nbd/constants.js';
import { RequestBatch, canBatch, runMerged } from '../../../lib/nbd/nbd-request-batch.js';
import type { NbdRequest } from '../../../lib/nbd/nbd-server-protocol.js';
import { serveNbd } from '../../../lib/nbd/serve-nbd.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { seededBytes } from '../../helpers/tools.js';
import { parseReply, request } from './nbd-frames.js';
import { RawClient } from './raw-client.js';

const MIB = 1024 * 1024;
const KIB4 = 4096;

/** Records every device call; reads or writes touching `failAt` fail. */
class CountingDevice extends MemoryDevice {
  readonly reads: Array<[number, number]> = [];
  readonly writes: Array<[number, number, boolean]> = [];
  failAt: number | undefined;

  private fails(offset: number, length: number): boolean {
    return this.failAt !== undefined && this.failAt >= offset && this.failAt < offset + length;
  }

  override async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.reads.push([offset, target.length]);
    if (this.fails(offset, target.length)) throw new Error('simulated media error');
    await super.readInto(offset, target);
  }

  override async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    this.writes.push([offset, data.length, options?.fua === true]);
    if (this.fails(offset, data.length)) throw new Error('simulated media error');
    await super.write(offset, data, options);
  }
}

let nextCookie = 1n;
function read(offset: number, length = KIB4, structured = false): NbdRequest {
  return { type: C.NBD_CMD_READ, flags: 0, cookie: nextCookie++, offset, length, structured, metaContextId: undefined };
}
function write(offset: number, data: Buffer, flags = 0): NbdRequest {
  return {
    type: C.NBD_CMD_WRITE,
    flags,
    cookie: nextCookie++,
    offset,
    length: data.length,
    data,
    structured: false,
    metaContextId: undefined,
  };
}
function batchOf(requests: NbdRequest[]): RequestBatch | undefined {
  const batch = new RequestBatch(requests[0] as NbdRequest);
  for (const one of requests.slice(1)) if (!batch.tryAdd(one)) return undefined;
  return batch;
}
const offsets = (runs: NbdRequest[][]): number[][] => runs.map((run) => run.map((one) => one.offset / KIB4));
const plain = { acquire: (length: number) => Buffer.allocUnsafe(length), release: () => undefined };

test('runs: contiguous requests in any arrival order become ascending runs of at most 64 KiB', (t) => {
  const descending = Array.from({ length: 20 }, (_, index) => read((19 - index) * KIB4));
  t.deepEqual(offsets((batchOf(descending) as RequestBatch).runs()), [Array.from({ length: 16 }, (_, index) => index), [16, 17, 18, 19]]);
  t.deepEqual(offsets((batchOf([read(0), read(3 * KIB4), read(KIB4), read(8 * KIB4)]) as RequestBatch).runs()), [[0, 1], [3], [8]]);
  t.deepEqual(offsets((batchOf([read(0), read(0)]) as RequestBatch).runs()), [[0], [0]], 'overlapping reads are not merged');
});

test('what may join: same kind, same FUA, small; overlapping writes keep arrival order unmerged', (t) => {
  t.false(canBatch(read(0, 0)), 'zero-length');
  t.false(canBatch(read(0, C.SBM_COALESCE_MAX_REQUEST_BYTES + 1)), 'big requests run alone');
  t.false(canBatch({ ...read(0), type: C.NBD_CMD_FLUSH }));
  const batch = new RequestBatch(write(0, Buffer.alloc(KIB4)));
  t.false(batch.tryAdd(read(KIB4)), 'a READ does not join WRITEs');
  t.false(batch.tryAdd(write(KIB4, Buffer.alloc(KIB4), C.NBD_CMD_FLAG_FUA)), 'FUA does not join non-FUA');
  const overlapping = batchOf([
    write(2 * KIB4, Buffer.alloc(KIB4)),
    write(KIB4, Buffer.alloc(2 * KIB4)),
    write(0, Buffer.alloc(KIB4)),
  ]) as RequestBatch;
  t.deepEqual(offsets(overlapping.runs()), [[2], [1], [0]]);
});

test('runMerged READ: one device call, each reply carries its own slice (simple and structured)', async (t) => {
  const bytes = seededBytes(MIB, 5);
  const device = new CountingDevice(MIB, false, bytes);
  const run = [read(8192, KIB4, true), read(12288, 1000, false), read(13288, 3096, true)];
  const frames = await runMerged(device, run, plain);
  t.deepEqual(device.reads, [[8192, 8192]]);
  const first = parseReply(frames[0] as Buffer);
  if (first.reply.kind !== 'chunk') return t.fail();
  t.is(first.reply.cookie, (run[0] as NbdRequest).cookie);
  t.is(first.reply.payload.readBigUInt64BE(0), 8192n);
  t.true(first.reply.payload.subarray(8).equals(bytes.subarray(8192, 12288)));
  const second = parseReply(frames[1] as Buffer, 0, 1000);
  t.like(second.reply, { kind: 'simple', error: 0, cookie: run[1]?.cookie });
  t.true(second.data?.equals(bytes.subarray(12288, 13288)));
  const third = parseReply(frames[2] as Buffer);
  if (third.reply.kind !== 'chunk') return t.fail();
  t.true(third.reply.payload.subarray(8).equals(bytes.subarray(13288, 16384)));
});

test('runMerged READ failure: retried one by one, only the failing request gets an error', async (t) => {
  const device = new CountingDevice(MIB, false, seededBytes(MIB, 6));
  device.failAt = KIB4 + 10;
  const run = [read(0), read(KIB4), read(2 * KIB4)];
  const frames = await runMerged(device, run, plain);
  t.deepEqual(device.reads, [
    [0, 3 * KIB4],
    [0, KIB4],
    [KIB4, KIB4],
    [2 * KIB4, KIB4],
  ]);
  t.deepEqual(
    frames.map((frame) => parseReply(frame).reply),
    [
      { kind: 'simple', error: 0, cookie: run[0]?.cookie },
      { kind: 'simple', error: C.NBD_EIO, cookie: run[1]?.cookie },
      { kind: 'simple', error: 0, cookie: run[2]?.cookie },
    ],
  );
});

test('runMerged WRITE: one device call with the FUA flag; a failure is retried one by one', async (t) => {
  const device = new CountingDevice(MIB);
  const run = [write(0, seededBytes(KIB4, 1), C.NBD_CMD_FLAG_FUA), write(KIB4, seededBytes(KIB4, 2), C.NBD_CMD_FLAG_FUA)];
  const frames = await runMerged(device, run, plain);
  t.deepEqual(device.writes, [[0, 2 * KIB4, true]]);
  t.true(frames.every((frame) => parseReply(frame).reply.kind === 'simple' && parseReply(frame).reply.cookie !== 0n));
  t.true(device.bytes.subarray(0, 2 * KIB4).equals(Buffer.concat([seededBytes(KIB4, 1), seededBytes(KIB4, 2)])));

  device.writes.length = 0;
  device.failAt = 3 * KIB4;
  const failing = [write(2 * KIB4, seededBytes(KIB4, 3)), write(3 * KIB4, seededBytes(KIB4, 4))];
  const results = await runMerged(device, failing, plain);
  t.deepEqual(device.writes, [
    [2 * KIB4, 2 * KIB4, false],
    [2 * KIB4, KIB4, false],
    [3 * KIB4, KIB4, false],
  ]);
  t.deepEqual(
    results.map((frame) => (parseReply(frame).reply as { error: number }).error),
    [0, C.NBD_EIO],
  );
  t.true(device.bytes.subarray(2 * KIB4, 3 * KIB4).equals(seededBytes(KIB4, 3)));
});

test('over a socket: 16 contiguous reads sent newest first are one device read; every reply is right', async (t) => {
  const bytes = seededBytes(MIB, 7);
  const device = new CountingDevice(MIB, false, bytes);
  const server = await serveNbd(device);
  t.teardown(() => server.close());
  const raw = await RawClient.connect(server);
  t.teardown(() => raw.destroy());
  await raw.handshake();
  raw.send(Buffer.concat(Array.from({ length: 16 }, (_, index) => request(C.NBD_CMD_READ, 0, BigInt(index), (15 - index) * KIB4, KIB4))));
  const seen = new Set<bigint>();
  for (let index = 0; index < 16; index++) {
    const reply = await raw.simpleReply(KIB4);
    t.is(reply.error, 0);
    const offset = (15 - Number(reply.cookie)) * KIB4;
    t.true(reply.data.equals(bytes.subarray(offset, offset + KIB4)), `cookie ${reply.cookie}`);
    seen.add(reply.cookie);
  }
  t.is(seen.size, 16);
  t.deepEqual(device.reads, [[0, 16 * KIB4]]);

  // Writes likewise (small, so the whole burst is one socket read), then a FLUSH after them: the
  // writes started first, as one call.
  const payloads = [0, 1, 2, 3].map((index) => seededBytes(512, 20 + index));
  raw.send(
    Buffer.concat([
      ...[3, 2, 1, 0].map((index) => request(C.NBD_CMD_WRITE, 0, BigInt(100 + index), 64 * KIB4 + index * 512, 512, payloads[index])),
      request(C.NBD_CMD_FLUSH, 0, 200n, 0, 0),
    ]),
  );
  const cookies = new Set<bigint>();
  for (let index = 0; index < 5; index++) {
    const reply = await raw.simpleReply();
    t.is(reply.error, 0);
    cookies.add(reply.cookie);
  }
  t.deepEqual([...cookies].sort(), [100n, 101n, 102n, 103n, 200n]);
  t.deepEqual(device.writes, [[64 * KIB4, 2048, false]]);
  t.true(device.bytes.subarray(64 * KIB4, 64 * KIB4 + 2048).equals(Buffer.concat(payloads)));
});
