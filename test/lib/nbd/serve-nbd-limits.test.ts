// serveNbd's limits against hostile raw clients: idle clients at the connection limit give way to
// new ones, clients that never read their replies cannot push the server's in-flight bytes past
// the server-wide budget nor starve the others, and the budget returns to 0 when they leave.

import test, { type ExecutionContext } from 'ava';

import * as C from '../../../lib/nbd/constants.js';
import { type NbdServerHandle, type ServeNbdOptions, serveNbd } from '../../../lib/nbd/serve-nbd.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { request } from './nbd-frames.js';
import { RawClient } from './raw-client.js';

const MIB = 1024 * 1024;

async function serve(t: ExecutionContext, options: ServeNbdOptions, sizeBytes = 64 * MIB): Promise<NbdServerHandle> {
  const server = await serveNbd(new MemoryDevice(sizeBytes), options);
  t.teardown(() => server.close());
  return server;
}

async function client(t: ExecutionContext, server: NbdServerHandle): Promise<RawClient> {
  const raw = await RawClient.connect(server);
  t.teardown(() => raw.destroy());
  return raw;
}

async function handshaken(t: ExecutionContext, server: NbdServerHandle): Promise<RawClient> {
  const raw = await client(t, server);
  await raw.handshake();
  return raw;
}

/** A client that answers a small READ (within the reply timeout). */
async function served(raw: RawClient, cookie: bigint, timeoutMs = 5000): Promise<boolean> {
  raw.send(request(C.NBD_CMD_READ, 0, cookie, 0, 4096));
  const header = await raw.read(16, timeoutMs);
  await raw.read(4096, timeoutMs);
  return header.readUInt32BE(4) === 0 && header.readBigUInt64BE(8) === cookie;
}

/** Resolves whether the server sent its greeting (true) or closed the connection first (false). */
async function greeted(raw: RawClient): Promise<boolean> {
  try {
    await raw.read(18, 2000);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

test('at the connection limit, a new client replaces the longest-idle one; a busy one is never evicted', async (t) => {
  // A timeout well above the time three handshakes take on a loaded machine, so the early newcomer
  // really meets a server where nobody has been idle long enough.
  const server = await serve(t, { maxConnections: 3, idleTimeoutMs: 3000 });
  const busy = await handshaken(t, server);
  const idleA = await handshaken(t, server);
  const idleB = await handshaken(t, server);
  // The server is full and nobody has been idle long enough: the newcomer is refused, not queued.
  const early = await client(t, server);
  t.false(await greeted(early), 'refused while no connection has been idle for the timeout');
  await early.closed;
  t.is(server.stats().connections, 3);

  // The busy client keeps working; the other two sit idle past the timeout.
  for (let round = 0; round < 34; round++) {
    t.true(await served(busy, BigInt(round)));
    await sleep(100);
  }
  const late = await client(t, server);
  t.true(await greeted(late), 'a new client is served once a connection has been idle long enough');
  await idleA.closed;
  t.true(idleA.ended, 'the longest-idle (oldest on a tie) connection gave way');
  t.false(idleB.ended, 'only one connection is evicted per newcomer');
  t.false(busy.ended, 'a client using the disk is not evicted');
  t.true(await served(busy, 100n));
  t.is(server.stats().connections, 3);
});

test('at the connection limit, a client stuck in the handshake for over a second gives way to a new one', async (t) => {
  const server = await serve(t, { maxConnections: 2, idleTimeoutMs: 60_000 });
  const stuck = await client(t, server);
  t.true(await greeted(stuck));
  const working = await handshaken(t, server);
  const early = await client(t, server);
  t.false(await greeted(early), 'refused: the stuck client has not used its grace second yet');
  await sleep(1100);
  const late = await client(t, server);
  t.true(await greeted(late));
  await stuck.closed;
  t.false(working.ended, 'a connection in use keeps its place');
  t.true(await served(working, 1n));
});

test('idle clients are not dropped while the server is below its limit', async (t) => {
  const server = await serve(t, { maxConnections: 4, idleTimeoutMs: 100 });
  const idle = await handshaken(t, server);
  await sleep(400);
  const other = await handshaken(t, server);
  t.true(await served(other, 1n));
  t.false(idle.ended);
  t.true(await served(idle, 2n), 'the idle client is still served');
});

const READ_BYTES = 2 * MIB;
const GLOBAL_CAP = 8 * MIB;
const CONNECTION_CAP = 5 * MIB;

/** A client that sends `count` large READs and never reads a reply. */
async function stalledReader(t: ExecutionContext, server: NbdServerHandle, count: number, base: number): Promise<RawClient> {
  const raw = await handshaken(t, server);
  raw.socket.pause();
  raw.send(
    Buffer.concat(
      Array.from({ length: count }, (_, index) => request(C.NBD_CMD_READ, 0, BigInt(base + index), index * READ_BYTES, READ_BYTES)),
    ),
  );
  return raw;
}

test('one client that never reads its replies holds only its own cap: another client is served at once', async (t) => {
  const server = await serve(t, { maxInFlightBytes: GLOBAL_CAP, limits: { maxInFlightBytes: CONNECTION_CAP }, idleTimeoutMs: 60_000 });
  await stalledReader(t, server, 6, 0);
  t.true(await until(() => server.stats().inFlightBytes > 0, 2000));
  await sleep(200);
  t.true(server.stats().inFlightBytes <= CONNECTION_CAP, `one connection holds ${server.stats().inFlightBytes} bytes`);
  const other = await handshaken(t, server);
  t.true(await served(other, 7n, 2000), 'served without waiting for the stalled client');
});

test(
  'many clients sending large READs they never read: ' +
    'in-flight bytes stay under the global cap and a small READ is still served at once',
  async (t) => {
    const server = await serve(t, { maxInFlightBytes: GLOBAL_CAP, limits: { maxInFlightBytes: CONNECTION_CAP }, stallTimeoutMs: 60_000 });
    for (let index = 0; index < 6; index++) await stalledReader(t, server, 6, index * 100);
    t.true(await until(() => server.stats().waitingSessions > 0, 2000), 'the budget is exhausted: some connections wait');
    const other = await handshaken(t, server);
    t.true(await served(other, 9999n, 2000), 'a small READ does not wait behind large ones that cannot fit');
    const stats = server.stats();
    t.is(stats.connections, 7, 'nobody was dropped');
    t.true(stats.peakInFlightBytes <= GLOBAL_CAP, `peak ${stats.peakInFlightBytes} > cap ${GLOBAL_CAP}`);
  },
);

test(
  'clients that never read: stalled holders are dropped while others wait, ' + 'a large READ gets its turn, the budget returns to 0',
  async (t) => {
    const server = await serve(t, { maxInFlightBytes: GLOBAL_CAP, limits: { maxInFlightBytes: CONNECTION_CAP }, stallTimeoutMs: 300 });
    const stalled: RawClient[] = [];
    for (let index = 0; index < 6; index++) stalled.push(await stalledReader(t, server, 6, index * 100));
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(server.stats().inFlightBytes), 5);
    t.teardown(() => clearInterval(sampler));
    t.true(await until(() => server.stats().waitingSessions > 0, 2000), 'the budget is exhausted: some connections wait');

    // A READ as large as theirs queues behind them; the stalled holders are dropped after the timeout.
    const other = await handshaken(t, server);
    other.send(request(C.NBD_CMD_READ, 0, 9999n, 0, READ_BYTES));
    t.like(await other.simpleReply(READ_BYTES), { cookie: 9999n, error: 0 });
    clearInterval(sampler);

    const stats = server.stats();
    t.true(stats.peakInFlightBytes <= GLOBAL_CAP, `peak ${stats.peakInFlightBytes} > cap ${GLOBAL_CAP}`);
    t.true(samples.every((bytes) => bytes <= GLOBAL_CAP));
    t.true(
      samples.some((bytes) => bytes > GLOBAL_CAP / 2),
      'the stalled clients did fill the budget',
    );
    // (A paused client socket does not see the close; the server's count does.)
    t.true(stats.connections < stalled.length + 1, 'stalled readers were dropped while others waited');

    for (const raw of stalled) raw.destroy();
    t.true(
      await until(() => server.stats().inFlightBytes === 0 && server.stats().connections === 1, 5000),
      `budget back to 0 (now ${server.stats().inFlightBytes})`,
    );
    t.is(server.stats().waitingSessions, 0);
    t.true(await served(other, 10_000n));
    t.true(server.stats().pooledBytes > 0, 'released buffers are kept for reuse while clients remain');
    other.destroy();
    t.true(await until(() => server.stats().connections === 0, 5000));
    t.is(server.stats().pooledBytes, 0, 'and let go when the last client leaves');
  },
);

test('large WRITE payloads are reserved before they are read: half-sent payloads cannot exceed the budget', async (t) => {
  const server = await serve(t, { maxInFlightBytes: GLOBAL_CAP, limits: { maxInFlightBytes: CONNECTION_CAP }, stallTimeoutMs: 300 });
  const writers: RawClient[] = [];
  for (let index = 0; index < 6; index++) {
    const raw = await handshaken(t, server);
    // Header plus the first half of a 4 MiB payload, then silence.
    const whole = request(C.NBD_CMD_WRITE, 0, BigInt(index), index * 4 * MIB, 4 * MIB, Buffer.alloc(4 * MIB, index));
    raw.send(whole.subarray(0, 28 + 2 * MIB));
    writers.push(raw);
  }
  await sleep(100);
  const stats = server.stats();
  t.true(stats.inFlightBytes >= 4 * MIB, 'a payload being received holds its whole reservation');
  t.true(stats.waitingSessions >= 1, 'payloads without a reservation are not read: their senders wait');
  t.true(stats.peakInFlightBytes <= GLOBAL_CAP, `peak ${stats.peakInFlightBytes}`);
  for (const raw of writers) raw.destroy();
  t.true(await until(() => server.stats().inFlightBytes === 0, 5000), `budget back to 0 (now ${server.stats().inFlightBytes})`);
  const other = await handshaken(t, server);
  t.true(await served(other, 1n));
});
