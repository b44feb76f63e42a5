// serveNbd over real sockets with a raw client: out-of-order replies, backpressure, per-request
// errors, hostile clients dropped while another client carries on, and a clean close().

import test from 'ava';
import { stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { isSbmError } from '../../../lib/errors.js';
import * as C from '../../../lib/nbd/constants.js';
import { type NbdServerHandle, type ServeNbdOptions, serveNbd } from '../../../lib/nbd/serve-nbd.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { tempDir } from '../../helpers/tools.js';
import { CLIENT_FLAGS, hex, option, request } from './nbd-frames.js';
import { RawClient } from './raw-client.js';

const MIB = 1024 * 1024;

/** A memory device whose reads wait on a per-offset gate, and which counts concurrency and flushes. */
class GatedDevice extends MemoryDevice {
  readonly gates = new Map<number, { promise: Promise<void>; open: () => void }>();
  running = 0;
  maxRunning = 0;
  flushes = 0;
  failAt: number | undefined;

  gate(offset: number): () => void {
    let open = (): void => undefined;
    const promise = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.gates.set(offset, { promise, open });
    return open;
  }

  override async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      await this.gates.get(offset)?.promise;
      if (offset === this.failAt) throw new Error('simulated media error');
      await super.readInto(offset, target);
    } finally {
      this.running--;
    }
  }

  override async flush(): Promise<void> {
    this.flushes++;
    await super.flush();
  }
}

async function serve(t: import('ava').ExecutionContext, device: MemoryDevice, options: ServeNbdOptions = {}): Promise<NbdServerHandle> {
  const server = await serveNbd(device, options);
  t.teardown(() => server.close());
  return server;
}

async function client(t: import('ava').ExecutionContext, server: NbdServerHandle): Promise<RawClient> {
  const raw = await RawClient.connect(server);
  t.teardown(() => raw.destroy());
  return raw;
}

/** A second client that must still be served normally. */
async function secondClientWorks(t: import('ava').ExecutionContext, server: NbdServerHandle): Promise<void> {
  const other = await client(t, server);
  await other.handshake();
  other.send(request(C.NBD_CMD_READ, 0, 99n, 0, 4));
  const reply = await other.simpleReply(4);
  t.is(reply.error, 0, 'a second client is still served');
}

test('replies go out of order: a slow read does not hold back a fast one', async (t) => {
  const device = new GatedDevice(MIB);
  const release = device.gate(0);
  const server = await serve(t, device);
  const raw = await client(t, server);
  await raw.handshake();
  raw.send(Buffer.concat([request(C.NBD_CMD_READ, 0, 1n, 0, 512), request(C.NBD_CMD_READ, 0, 2n, 4096, 512)]));
  t.is((await raw.simpleReply(512)).cookie, 2n);
  release();
  t.is((await raw.simpleReply(512)).cookie, 1n);
});

test('in-flight requests are capped: the session stops reading until replies go out', async (t) => {
  const device = new GatedDevice(MIB);
  const releases = [0, 1, 2, 3, 4, 5].map((index) => device.gate(index * 4096));
  const server = await serve(t, device, { limits: { maxInFlightRequests: 2 } });
  const raw = await client(t, server);
  await raw.handshake();
  raw.send(Buffer.concat([0, 1, 2, 3, 4, 5].map((index) => request(C.NBD_CMD_READ, 0, BigInt(index), index * 4096, 16))));
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.is(device.maxRunning, 2);
  for (const release of releases) release();
  const cookies = new Set<bigint>();
  for (let index = 0; index < 6; index++) cookies.add((await raw.simpleReply(16)).cookie);
  t.is(cookies.size, 6);
  t.true(device.maxRunning <= 2);
});

test('a failing request gets EIO and the connection carries on; out-of-range gets EINVAL', async (t) => {
  const device = new GatedDevice(MIB);
  device.failAt = 8192;
  const server = await serve(t, device);
  const raw = await client(t, server);
  await raw.handshake(true);
  raw.send(request(C.NBD_CMD_READ, 0, 1n, 8192, 16));
  const failed = await raw.chunk();
  t.is(failed.type, C.NBD_REPLY_TYPE_ERROR);
  t.is(failed.payload.readUInt32BE(0), C.NBD_EIO);
  raw.send(request(C.NBD_CMD_READ, 0, 2n, MIB - 8, 16));
  t.is((await raw.chunk()).payload.readUInt32BE(0), C.NBD_EINVAL);
  await device.write(0, Buffer.from('sbm!'));
  raw.send(request(C.NBD_CMD_READ, 0, 3n, 0, 4));
  const ok = await raw.chunk();
  t.is(ok.type, C.NBD_REPLY_TYPE_OFFSET_DATA);
  t.is(ok.payload.subarray(8).toString(), 'sbm!');
});

test('writes on a read-only export get EPERM and change nothing', async (t) => {
  const device = new MemoryDevice(MIB);
  const server = await serve(t, device, { readOnly: true });
  const raw = await client(t, server);
  const { flags } = await raw.handshake();
  t.true((flags & C.NBD_FLAG_READ_ONLY) !== 0);
  raw.send(request(C.NBD_CMD_WRITE, 0, 1n, 0, 4, Buffer.from('evil')));
  raw.send(request(C.NBD_CMD_WRITE_ZEROES, 0, 2n, 0, 4096));
  t.is((await raw.simpleReply()).error, C.NBD_EPERM);
  t.is((await raw.simpleReply()).error, C.NBD_EPERM);
  t.is(device.bytes.subarray(0, 4).toString('hex'), '00000000');
});

const HOSTILE: Array<[string, Buffer]> = [
  ['bad client flags', hex('000000ff')],
  ['bad option magic', Buffer.concat([CLIENT_FLAGS, hex('0102030405060708 00000007 00000000')])],
  ['huge option length', Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_GO, Buffer.alloc(0), 0x7fffffff)])],
  ['EXPORT_NAME for an unknown export', Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_EXPORT_NAME, Buffer.from('nope'))])],
];

for (const [name, bytes] of HOSTILE) {
  test(`hostile handshake (${name}): that client is dropped, another is served`, async (t) => {
    const server = await serve(t, new MemoryDevice(MIB), { name: 'disk' });
    const raw = await client(t, server);
    await raw.read(18);
    raw.send(bytes);
    await raw.closed;
    t.true(raw.ended);
    await secondClientWorks(t, server);
  });
}

test('bad request magic drops the client after its earlier requests', async (t) => {
  const server = await serve(t, new MemoryDevice(MIB));
  const raw = await client(t, server);
  await raw.handshake();
  const bad = request(C.NBD_CMD_READ, 0, 2n, 0, 1);
  bad.writeUInt32BE(0x12560953, 0);
  raw.send(Buffer.concat([request(C.NBD_CMD_READ, 0, 1n, 0, 1), bad]));
  await raw.closed;
  await secondClientWorks(t, server);
});

test('unknown options get ERR_UNSUP over a real socket and the client can still GO', async (t) => {
  const server = await serve(t, new MemoryDevice(MIB));
  const raw = await client(t, server);
  await raw.read(18);
  raw.send(Buffer.concat([CLIENT_FLAGS, option(1234, Buffer.from('whatever'))]));
  t.like(await raw.optionReply(), { option: 1234, type: C.NBD_REP_ERR_UNSUP });
  raw.send(option(C.NBD_OPT_GO, Buffer.concat([hex('00000000 0000')])));
  for (let reply = await raw.optionReply(); reply.type !== C.NBD_REP_ACK; reply = await raw.optionReply()) t.is(reply.type, C.NBD_REP_INFO);
  raw.send(request(C.NBD_CMD_FLUSH, 0, 5n, 0, 0));
  t.is((await raw.simpleReply()).error, 0);
});

test('a client that never finishes the handshake is dropped at the deadline (slowloris)', async (t) => {
  const server = await serve(t, new MemoryDevice(MIB), { limits: { handshakeTimeoutMs: 300 } });
  const slow = await client(t, server);
  await slow.read(18);
  slow.send(CLIENT_FLAGS.subarray(0, 2));
  await slow.closed;
  t.true(slow.ended);
  await secondClientWorks(t, server);
});

test('close() drains in-flight requests, flushes, and removes the socket and its private directory', async (t) => {
  const device = new GatedDevice(MIB);
  const release = device.gate(0);
  const server = await serveNbd(device, { name: 'd', limits: { maxInFlightRequests: 1 } });
  const socketPath = server.socketPath as string;
  t.regex(server.uri, /^nbd\+unix:\/\/\/d\?socket=\/.*\/nbd\.sock$/);
  t.is((await stat(dirname(socketPath))).mode & 0o777, 0o700);
  const raw = await RawClient.connect(server);
  await raw.handshake();
  // One in flight at a time: the second READ (same write, so received together) waits unparsed.
  raw.send(Buffer.concat([request(C.NBD_CMD_READ, 0, 1n, 0, 8), request(C.NBD_CMD_READ, 0, 2n, 0, 8)]));
  while (device.running === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const closing = server.close();
  setTimeout(release, 100);
  const refused = await raw.simpleReply(8);
  t.like(refused, { cookie: 2n, error: C.NBD_ESHUTDOWN }, 'a request not yet started is refused');
  const reply = await raw.simpleReply(8);
  t.like(reply, { cookie: 1n, error: 0 }, 'the in-flight read was answered before the connection closed');
  await closing;
  await raw.closed;
  t.true(device.flushes >= 1);
  await t.throwsAsync(stat(socketPath));
  await t.throwsAsync(stat(dirname(socketPath)));
});

test('TCP: port 0 picks a free loopback port; remote hosts need allowRemote; existing socket paths are refused', async (t) => {
  const server = await serve(t, new MemoryDevice(MIB), { port: 0, name: 'x' });
  t.regex(server.uri, /^nbd:\/\/127\.0\.0\.1:\d+\/x$/);
  t.true((server.port ?? 0) > 0);
  await secondClientWorks(t, server);
  const remote = await serveNbd(new MemoryDevice(MIB), { port: 0, host: '0.0.0.0' }).catch((error: unknown) => error);
  t.true(isSbmError(remote, 'SBM_USAGE'));
  const dir = await tempDir(t);
  const taken = join(dir, 'taken.sock');
  await writeFile(taken, '');
  const refused = await serveNbd(new MemoryDevice(MIB), { socketPath: taken }).catch((error: unknown) => error);
  t.true(isSbmError(refused, 'SBM_LISTEN'));
});

test('multi-conn: a write on one connection, flush on a second, read on a third sees it', async (t) => {
  const device = new GatedDevice(MIB);
  const server = await serve(t, device);
  const [a, b, c] = await Promise.all([client(t, server), client(t, server), client(t, server)]);
  for (const raw of [a, b, c]) t.true(((await (raw as RawClient).handshake()).flags & C.NBD_FLAG_CAN_MULTI_CONN) !== 0);
  (a as RawClient).send(request(C.NBD_CMD_WRITE, 0, 1n, 4096, 6, Buffer.from('shared')));
  t.is((await (a as RawClient).simpleReply()).error, 0);
  const flushesBefore = device.flushes;
  (b as RawClient).send(request(C.NBD_CMD_FLUSH, 0, 2n, 0, 0));
  t.is((await (b as RawClient).simpleReply()).error, 0);
  t.is(device.flushes, flushesBefore + 1, 'the flush reached the shared device');
  (c as RawClient).send(request(C.NBD_CMD_READ, 0, 3n, 4096, 6));
  t.is((await (c as RawClient).simpleReply(6)).data.toString(), 'shared');
});

test('a client that shuts its sending side still gets replies to everything it sent', async (t) => {
  const device = new GatedDevice(MIB);
  const releases = [0, 1, 2, 3].map((index) => device.gate(index * 4096));
  const server = await serve(t, device, { limits: { maxInFlightRequests: 1 } });
  const raw = await client(t, server);
  await raw.handshake();
  raw.send(Buffer.concat([0, 1, 2, 3].map((index) => request(C.NBD_CMD_READ, 0, BigInt(index), index * 4096, 8))));
  raw.socket.end();
  for (const release of releases) release();
  const cookies: bigint[] = [];
  for (let index = 0; index < 4; index++) cookies.push((await raw.simpleReply(8)).cookie);
  t.deepEqual(cookies, [0n, 1n, 2n, 3n]);
  await raw.closed;
});

test('garbage from many clients at once never takes the server down', async (t) => {
  const device = new MemoryDevice(MIB);
  const server = await serve(t, device, { limits: { handshakeTimeoutMs: 500, drainTimeoutMs: 500 } });
  const prefix = Buffer.concat([CLIENT_FLAGS, option(C.NBD_OPT_GO, Buffer.from('000000000000', 'hex'))]);
  const clients = await Promise.all(Array.from({ length: 24 }, () => client(t, server)));
  clients.forEach((raw, index) => {
    const noise = Buffer.from(Array.from({ length: 2000 }, (_, at) => (at * 131 + index * 17) & 0xff));
    raw.send(Buffer.concat([prefix.subarray(0, (index * 7) % prefix.length), noise]));
    if (index % 3 === 0) raw.destroy();
  });
  await Promise.all(clients.map((raw) => raw.closed));
  t.true(clients.every((raw) => raw.ended));
  t.true(
    device.bytes.every((byte) => byte === 0),
    'nothing was written',
  );
  await secondClientWorks(t, server);
});

test('oversize requests: a 64 MiB READ gets EOVERFLOW and the client carries on; a 4 GiB WRITE drops only that client', async (t) => {
  const server = await serve(t, new MemoryDevice(256 * MIB));
  const raw = await client(t, server);
  await raw.handshake();
  raw.send(request(C.NBD_CMD_READ, 0, 1n, 0, 64 * MIB));
  t.like(await raw.simpleReply(), { error: C.NBD_EOVERFLOW, cookie: 1n });
  raw.send(request(C.NBD_CMD_READ, 0, 2n, 0, 16));
  t.like(await raw.simpleReply(16), { error: 0, cookie: 2n });
  raw.send(request(C.NBD_CMD_WRITE, 0, 3n, 0, 0xffffffff));
  await raw.closed;
  await secondClientWorks(t, server);
});

test('a client that floods invalid requests without reading replies is throttled, not buffered without bound', async (t) => {
  const server = await serve(t, new MemoryDevice(MIB), { limits: { maxInFlightBytes: 64 * 1024 } });
  const raw = await client(t, server);
  await raw.handshake();
  raw.socket.pause();
  const bad = request(C.NBD_CMD_READ, 0, 1n, MIB, 1); // out of range: answered without the device
  const batch = Buffer.concat(Array.from({ length: 4096 }, () => bad));
  let sent = 0;
  // Keep writing until the server stops reading (our socket's buffer stays full).
  for (let round = 0; round < 200 && raw.socket.writableLength < 4 * MIB; round++) {
    raw.socket.write(batch);
    sent += batch.length;
    await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.true(raw.socket.writableLength > 0, 'the server stopped reading');
  t.true(sent < 200 * batch.length, 'the writer was pushed back');
  raw.socket.resume();
  const first = await raw.simpleReply();
  t.is(first.error, C.NBD_EINVAL);
});

test('pooled read buffers all come back: clients that leave mid-handshake, mid-header or mid-payload leak none', async (t) => {
  const device = new GatedDevice(4 * MIB);
  const server = await serve(t, device);
  const payload = Buffer.alloc(3 * MIB, 7); // larger than one read: it spans several pooled chunks
  const leaveAfter = async (send: (raw: RawClient) => Promise<void>) => {
    const raw = await client(t, server);
    await send(raw);
    await new Promise((resolve) => setTimeout(resolve, 50));
    raw.destroy();
    await raw.closed;
  };
  await leaveAfter(async (raw) => raw.send(CLIENT_FLAGS.subarray(0, 2)));
  await leaveAfter(async (raw) => {
    await raw.handshake();
    raw.send(request(C.NBD_CMD_WRITE, 0, 1n, 0, payload.length).subarray(0, 20));
  });
  await leaveAfter(async (raw) => {
    await raw.handshake();
    raw.send(request(C.NBD_CMD_WRITE, 0, 2n, 0, payload.length, payload).subarray(0, 2 * MIB));
  });
  await leaveAfter(async (raw) => {
    await raw.handshake();
    raw.send(request(C.NBD_CMD_WRITE, 0, 3n, 0, payload.length, payload));
    t.is((await raw.simpleReply()).error, 0);
    raw.send(request(C.NBD_CMD_READ, 0, 4n, 0, payload.length)); // its reply is never read
  });
  const deadline = Date.now() + 5000;
  while (server.stats().connections > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  t.is(server.stats().connections, 0);
  t.is(server.stats().pooledBuffersOut, 0, 'every pooled buffer was given back');
  t.true((await device.read(0, payload.length)).equals(payload), 'the completed write landed whole');
});
