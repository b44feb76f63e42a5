// serveNbd: serves one BlockDevice over NBD until close(). Listens on a Unix socket (by default in
// a fresh 0700 directory under the OS temp dir: the directory mode is the access control, since
// Node has no SO_PEERCRED) or on TCP, 127.0.0.1 unless the caller allows a remote address.
//
// close(): stop accepting -> each session stops reading and drains its in-flight requests ->
// flush the device -> remove the socket and its private directory. The device stays open: the
// caller owns it.
//
// Memory: bytes in flight over all connections stay under maxInFlightBytes (InFlightBudget; each
// connection under its own, smaller cap), idle pooled buffers under POOL_MAX_IDLE_BYTES, and the
// pool is emptied when the last client leaves. Connections: see connection-guard.ts.

import { mkdtemp, rm, rmdir, stat } from 'node:fs/promises';
import { type AddressInfo, type Server, type Socket, createServer, isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { debugLog } from '../debug-log.js';

import type { BlockDevice } from '../block-device.js';
import { SbmError, fromSystemError } from '../errors.js';
import { BufferPool } from './buffer-pool.js';
import { ConnectionGuard } from './connection-guard.js';
import { InFlightBudget, type InFlightBudgetStats } from './in-flight-budget.js';
import type { NbdExport } from './nbd-export.js';
import { DEFAULT_SESSION_LIMITS, NbdSession, type SessionLimits } from './nbd-session.js';
import { acceptWithPooledReads } from './pooled-reads.js';
import { SendBufferGrants } from './send-buffer.js';

const debug = debugLog('sbm:nbd');

/** Connections served at once (each costs a descriptor; the mount keeps 512 for bands). */
export const DEFAULT_MAX_CONNECTIONS = 128;
/** A connection idle this long may give its place to a new client when the server is full. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** A connection whose client leaves its replies unread this long may be dropped while others wait for memory. */
export const DEFAULT_STALL_TIMEOUT_MS = 10_000;
/** Bytes in flight over all connections; with the idle pool below, RSS stays well under 256 MiB. */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 96 * 1024 * 1024;
/** Released buffers kept for reuse (enough for nbdcopy's 4 x 64 requests of 256 KiB). */
const POOL_MAX_IDLE_BYTES = 64 * 1024 * 1024 + 64 * 1024;

export interface ServeNbdOptions {
  /** Export name (default ""); clients asking for "" get it too. */
  readonly name?: string;
  readonly description?: string;
  /** Serve read-only even if the device is writable. */
  readonly readOnly?: boolean;
  /** Unix socket path; must not exist. Default: DIR/nbd.sock in a new private directory. */
  readonly socketPath?: string;
  /** Listen on TCP instead (0 = any free port). */
  readonly port?: number;
  /** TCP address (default 127.0.0.1); non-loopback needs allowRemote. */
  readonly host?: string;
  readonly allowRemote?: boolean;
  /** Advertise CAN_MULTI_CONN (default true: every connection shares this device and its flush). */
  readonly multiConn?: boolean;
  /** Connections served at once (default 128); see connection-guard.ts for who gives way. */
  readonly maxConnections?: number;
  /** Idle time after which a connection may be replaced by a new one at the limit (default 60 s). */
  readonly idleTimeoutMs?: number;
  /** Unread replies held this long may be dropped while others wait for memory (default 10 s). */
  readonly stallTimeoutMs?: number;
  /** Bytes in flight over all connections (default 96 MiB); never below one connection's cap. */
  readonly maxInFlightBytes?: number;
  /** Per-connection limits. */
  readonly limits?: Partial<SessionLimits>;
}

export interface NbdServerStats extends InFlightBudgetStats {
  readonly connections: number;
  /** Released buffers kept for reuse (0 once the last client has left). */
  readonly pooledBytes: number;
  /** Pooled buffers handed out and not back yet (0 once the last client has left). */
  readonly pooledBuffersOut: number;
}

export interface NbdServerHandle extends AsyncDisposable {
  /** nbd+unix:///NAME?socket=PATH or nbd://HOST:PORT/NAME */
  readonly uri: string;
  readonly exportName: string;
  readonly socketPath?: string;
  readonly host?: string;
  readonly port?: number;
  /** Connections currently open. */
  readonly connections: number;
  /** Connections and the server-wide in-flight accounting, now. */
  stats(): NbdServerStats;
  /** Idempotent. */
  close(): Promise<void>;
}

export async function serveNbd(device: BlockDevice, options: ServeNbdOptions = {}): Promise<NbdServerHandle> {
  const name = options.name ?? '';
  if (Buffer.byteLength(name) > 4096) throw new SbmError('SBM_USAGE', 'export name is longer than 4096 bytes');
  const target: NbdExport = {
    name,
    description: options.description,
    sizeBytes: device.sizeBytes,
    readOnly: device.readOnly || options.readOnly === true,
    multiConn: options.multiConn ?? true,
  };
  const limits: SessionLimits = { ...DEFAULT_SESSION_LIMITS, ...options.limits };
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1)
    throw new SbmError('SBM_USAGE', `maxConnections ${maxConnections} is not a positive integer`);
  for (const [what, ms] of [
    ['idleTimeoutMs', idleTimeoutMs],
    ['stallTimeoutMs', stallTimeoutMs],
  ] as const) {
    if (!Number.isFinite(ms) || ms <= 0) throw new SbmError('SBM_USAGE', `${what} ${ms} is not a positive number`);
  }
  // The budget must hold one connection's worth, or a largest request could never start.
  const budget = new InFlightBudget(Math.max(options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES, limits.maxInFlightBytes));
  const guard = new ConnectionGuard({ maxConnections, idleTimeoutMs, stallTimeoutMs }, budget);
  const sessions = guard.sessions;
  const pool = new BufferPool(POOL_MAX_IDLE_BYTES);
  const sendBuffers = new SendBufferGrants();
  const listensOnUnixSocket = options.port === undefined;
  // Paused on connect: acceptWithPooledReads takes the connection over before anything is read.
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted: Socket) => {
    if (!guard.admit()) {
      accepted.destroy();
      return;
    }
    let session: NbdSession | undefined;
    const input = acceptWithPooledReads(accepted, pool, (chunk) => {
      if (session !== undefined) session.receive(chunk);
      else pool.release(chunk);
    });
    const socket = input.socket;
    if ('setNoDelay' in socket && socket.remoteFamily !== undefined) socket.setNoDelay(true);
    if (listensOnUnixSocket) sendBuffers.grant(socket); // TCP autotunes its own buffers
    session = new NbdSession(socket, device, target, limits, pool, budget, input.pooled);
    guard.add(session);
    // Memory kept for reuse goes back once nobody is connected.
    void session.done.then(() => {
      if (sessions.size === 0) pool.clear();
    });
  });

  let listening: Listening;
  try {
    if (options.port !== undefined) {
      listening = await listenTcp(server, options.port, options.host ?? '127.0.0.1', options.allowRemote === true);
    } else {
      listening = await listenUnix(server, options.socketPath);
    }
  } catch (error) {
    guard.close();
    throw error;
  }
  const uri =
    listening.socketPath !== undefined
      ? `nbd+unix:///${encodeURIComponent(name)}?socket=${encodeSocketPath(listening.socketPath)}`
      : `nbd://${listening.host?.includes(':') ? `[${listening.host}]` : listening.host}:${listening.port}/${encodeURIComponent(name)}`;
  debug('serving %s', uri);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      guard.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...sessions].map((session) => session.shutdown()));
      await stopped;
      try {
        if (!target.readOnly) await device.flush();
      } finally {
        await listening.cleanup();
      }
    })();
    return closing;
  };
  return {
    uri,
    exportName: name,
    socketPath: listening.socketPath,
    host: listening.host,
    port: listening.port,
    get connections() {
      return sessions.size;
    },
    stats: () => ({ connections: sessions.size, pooledBytes: pool.idleBufferBytes, pooledBuffersOut: pool.buffersOut, ...budget.stats() }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

interface Listening {
  readonly socketPath?: string;
  readonly host?: string;
  readonly port?: number;
  cleanup(): Promise<void>;
}

function listen(server: Server, what: string, start: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      const reason = error.code === 'EADDRINUSE' ? 'address already in use' : error.message;
      reject(new SbmError('SBM_LISTEN', `cannot listen on ${what}: ${reason}`, { errno: error.code }, { cause: error }));
    };
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve();
    });
    start();
  });
}

async function listenUnix(server: Server, requested: string | undefined): Promise<Listening> {
  let privateDir: string | undefined;
  let socketPath = requested;
  if (socketPath === undefined) {
    // mkdtemp creates the directory with mode 0700.
    privateDir = await mkdtemp(join(tmpdir(), 'sbm-nbd-')).catch((error) => {
      throw fromSystemError(error, 'cannot create a private socket directory in', tmpdir());
    });
    socketPath = join(privateDir, 'nbd.sock');
  } else if (
    await stat(socketPath).then(
      () => true,
      () => false,
    )
  ) {
    throw new SbmError('SBM_LISTEN', `cannot listen on ${socketPath}: the path already exists`, { path: socketPath });
  }
  const path = socketPath;
  try {
    await listen(server, path, () => server.listen({ path, readableAll: false, writableAll: false }));
  } catch (error) {
    if (privateDir !== undefined) await rmdir(privateDir).catch(() => undefined);
    throw error;
  }
  return {
    socketPath: path,
    cleanup: async () => {
      // server.close() unlinks the socket on Linux; rm again in case it did not, then the directory.
      await rm(path, { force: true });
      if (privateDir !== undefined && dirname(path) === privateDir) await rmdir(privateDir).catch(() => undefined);
    },
  };
}

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

async function listenTcp(server: Server, port: number, host: string, allowRemote: boolean): Promise<Listening> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SbmError('SBM_USAGE', `port ${port} is not between 0 and 65535`);
  if (!isLoopbackHost(host) && !allowRemote) {
    throw new SbmError(
      'SBM_USAGE',
      `refusing to listen on ${host}: NBD has no authentication; pass --allow-remote to expose the disk beyond this machine`,
      { host },
    );
  }
  await listen(server, `${host}:${port}`, () => server.listen({ port, host }));
  const address = server.address() as AddressInfo;
  return { host, port: address.port, cleanup: async () => undefined };
}

/** Percent-encodes what would break the URI's query; '/' stays readable. */
function encodeSocketPath(path: string): string {
  return path.replace(/[^A-Za-z0-9/._~-]/g, (char) => encodeURIComponent(char));
}
