// Larger kernel send buffers for Unix-socket clients (lib/nbd/send-buffer.ts): the kernel really
// applies them, the number of connections holding one is capped, a failing setsockopt changes
// nothing, and serveNbd grants them to Unix-socket clients only.

import test from 'ava';
import { EventEmitter } from 'node:events';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { type Socket, connect, createServer } from 'node:net';
import { join } from 'node:path';

import { ENLARGED_SEND_BUFFER_BYTES, MAX_ENLARGED_CONNECTIONS, SendBufferGrants } from '../../../lib/nbd/send-buffer.js';
import { serveNbd } from '../../../lib/nbd/serve-nbd.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { tempDir } from '../../helpers/tools.js';
import { RawClient } from './raw-client.js';

const { getsockopt } = createRequire(import.meta.url)('sockopt') as {
  getsockopt: (socket: { _handle: { fd: number } }, level: number, option: number) => number;
};
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;

const sendBufferOf = (fd: number): number => getsockopt({ _handle: { fd } }, SOL_SOCKET, SO_SNDBUF);
const fdOf = (socket: Socket): number => (socket as unknown as { _handle: { fd: number } })._handle.fd;

/** What Linux reports after the grant: twice what was asked for, within twice net.core.wmem_max. */
async function expectedEnlarged(): Promise<number> {
  const wmemMax = Number((await readFile('/proc/sys/net/core/wmem_max', 'utf8')).trim());
  return 2 * Math.min(ENLARGED_SEND_BUFFER_BYTES, wmemMax);
}

/** Send buffer sizes of every socket this process holds open. */
async function ownSocketSendBuffers(): Promise<number[]> {
  const sizes: number[] = [];
  for (const name of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${name}`).catch(() => '');
    if (!target.startsWith('socket:')) continue;
    try {
      sizes.push(sendBufferOf(Number(name)));
    } catch {
      // Not a socket any more (closed meanwhile): skip it.
    }
  }
  return sizes;
}

class FakeSocket extends EventEmitter {}
const fake = (): Socket => new FakeSocket() as unknown as Socket;

test.serial('a granted connection on a Unix socket gets the larger send buffer from the kernel', async (t) => {
  const path = join(await tempDir(t), 'grant.sock');
  const grants = new SendBufferGrants();
  const seen = new Promise<{ before: number; after: number; granted: boolean }>((resolve) => {
    const server = createServer({ pauseOnConnect: true }, (socket) => {
      const before = sendBufferOf(fdOf(socket));
      const granted = grants.grant(socket);
      resolve({ before, after: sendBufferOf(fdOf(socket)), granted });
      socket.destroy();
      server.close();
    });
    server.listen(path, () => connect(path).on('error', () => undefined));
  });
  const { before, after, granted } = await seen;
  t.true(granted);
  t.true(after > before, `${after} > ${before}`);
  t.is(after, await expectedEnlarged());
});

test('at most MAX_ENLARGED_CONNECTIONS hold a larger buffer; a closed one gives its grant back', (t) => {
  const asked: number[] = [];
  const grants = new SendBufferGrants((_socket, bytes) => asked.push(bytes));
  const sockets = Array.from({ length: MAX_ENLARGED_CONNECTIONS + 1 }, fake);
  const results = sockets.map((socket) => grants.grant(socket));
  t.deepEqual(results, [...Array<boolean>(MAX_ENLARGED_CONNECTIONS).fill(true), false]);
  t.is(grants.live, MAX_ENLARGED_CONNECTIONS);
  t.true(asked.every((bytes) => bytes === ENLARGED_SEND_BUFFER_BYTES));
  (sockets[0] as unknown as FakeSocket).emit('close');
  t.is(grants.live, MAX_ENLARGED_CONNECTIONS - 1);
  t.true(grants.grant(sockets[MAX_ENLARGED_CONNECTIONS] as Socket));
});

test('a setsockopt that fails leaves the default and counts no grant', (t) => {
  const failing = new SendBufferGrants(() => {
    throw new Error('EPERM');
  });
  t.false(failing.grant(fake()));
  t.is(failing.live, 0);
});

test.serial('serveNbd enlarges the send buffer of a Unix-socket client, not of a TCP one', async (t) => {
  const enlarged = await expectedEnlarged();
  const count = async () => (await ownSocketSendBuffers()).filter((size) => size === enlarged).length;
  const before = await count();

  const unix = await serveNbd(new MemoryDevice(1024 * 1024), { socketPath: join(await tempDir(t), 'nbd.sock') });
  t.teardown(() => unix.close());
  const unixClient = await RawClient.connect(unix);
  await unixClient.read(18); // the greeting: the server has accepted and set up the connection
  t.is(await count(), before + 1, 'the server side of the Unix connection');

  const tcp = await serveNbd(new MemoryDevice(1024 * 1024), { port: 0 });
  t.teardown(() => tcp.close());
  const tcpClient = await RawClient.connect(tcp);
  await tcpClient.read(18);
  t.is(await count(), before + 1, 'TCP keeps its autotuned buffers');
  unixClient.destroy();
  tcpClient.destroy();
});
