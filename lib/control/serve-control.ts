// Server end of the mount control channel, started by `sbm mount` for a bundle it serves
// read-write. Start: private 0700 directory -> listen on control.sock in it -> write
// <bundle>/.sbm/control.json atomically. Close: remove control.json (if still ours) -> stop
// accepting, end connections -> remove socket and directory. Backup snapshots held by clients are
// left in place on close (a backup still copying from one can finish; the next backup's stale
// cleanup removes it); while the mount runs, a vanished client's are deleted.
// A misbehaving client gets an error reply or a closed connection, never a crashed mount.

import { mkdtemp, rm, rmdir, unlink } from 'node:fs/promises';
import { type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundlePaths } from '../bundle/bundle-paths.js';
import type { SparseBundle } from '../engine/sparse-bundle.js';
import { SbmError, fromSystemError } from '../errors.js';
import { replaceFile } from '../fs/atomic-write.js';
import type { WarningSink } from '../warnings.js';
import { localOperations } from './bundle-operations.js';
import {
  CONTROL_DIR_PREFIX,
  CONTROL_PROTOCOL_VERSION,
  CONTROL_SOCKET_NAME,
  MAX_CONNECTIONS,
  MAX_REQUEST_BYTES,
  SUN_PATH_MAX_BYTES,
} from './constants.js';
import { controlFilePath, readControlFile, renderControlFile } from './control-file.js';
import { encodeReply, errorToWire } from './control-protocol.js';
import { ControlDispatcher } from './control-dispatcher.js';
import { LineFramer } from './line-framer.js';

export interface ControlServerOptions {
  /** Where the private socket directory is made (default: the OS temp dir). */
  readonly directory?: string;
  readonly onWarning?: WarningSink;
}

export interface ControlServerHandle {
  readonly socketPath: string;
  readonly controlFile: string;
  close(): Promise<void>;
}

export async function serveControl(bundle: SparseBundle, options: ControlServerOptions = {}): Promise<ControlServerHandle> {
  if (bundle.readOnly)
    throw new SbmError('SBM_READ_ONLY', `bundle ${bundle.path} is open read-only; the control channel needs it read-write`);
  const parent = resolve(options.directory ?? tmpdir());
  // mkdtemp creates the directory with mode 0700: only this user can reach the socket.
  const privateDir = await mkdtemp(join(parent, CONTROL_DIR_PREFIX)).catch((error) => {
    throw fromSystemError(error, 'cannot create a private control socket directory in', parent);
  });
  const socketPath = join(privateDir, CONTROL_SOCKET_NAME);
  const removeDir = (): Promise<void> => rm(privateDir, { recursive: true, force: true });
  if (Buffer.byteLength(socketPath) > SUN_PATH_MAX_BYTES) {
    await removeDir();
    throw new SbmError(
      'SBM_LISTEN',
      `control socket path ${socketPath} is longer than ${SUN_PATH_MAX_BYTES} bytes (set TMPDIR to a shorter folder)`,
      { path: socketPath },
    );
  }
  const dispatcher = new ControlDispatcher(localOperations(bundle, { owned: false }));
  const connections = new Set<Promise<void>>();
  const sockets = new Set<Socket>();
  let nextConnectionId = 1;
  let closing: Promise<void> | undefined;
  const warn = (message: string): void => options.onWarning?.({ code: 'SBM_CONTROL', message });
  const server = createServer((socket) => {
    sockets.add(socket);
    const done = serveConnection(socket, nextConnectionId++, dispatcher, warn, () => closing === undefined).finally(() => {
      sockets.delete(socket);
      connections.delete(done);
    });
    connections.add(done);
  });
  server.maxConnections = MAX_CONNECTIONS;
  try {
    await listen(server, socketPath);
    const file = { version: CONTROL_PROTOCOL_VERSION, pid: process.pid, socket: socketPath };
    await replaceFile(controlFilePath(bundle.path), renderControlFile(file), bundlePaths(bundle.path).tmp);
  } catch (error) {
    server.close();
    await removeDir();
    throw error instanceof SbmError ? error : fromSystemError(error, 'cannot start the control channel of', bundle.path);
  }
  return {
    socketPath,
    controlFile: controlFilePath(bundle.path),
    close: () => {
      closing ??= (async () => {
        const current = await readControlFile(bundle.path);
        if (current?.pid === process.pid && current.socket === socketPath)
          await unlink(controlFilePath(bundle.path)).catch(() => undefined); // already gone is fine
        const stopped = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
        for (const socket of sockets) socket.end();
        await Promise.all([...connections]); // at most MAX_CONNECTIONS
        for (const socket of sockets) socket.destroy();
        await stopped;
        await rm(socketPath, { force: true });
        await rmdir(privateDir).catch(() => undefined); // someone put a file there: leave it
      })();
      return closing;
    },
  };
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolveListen, reject) => {
    const onError = (error: NodeJS.ErrnoException): void =>
      reject(new SbmError('SBM_LISTEN', `cannot listen on ${path}: ${error.message}`, { errno: error.code }, { cause: error }));
    server.once('error', onError);
    server.listen({ path, readableAll: false, writableAll: false }, () => {
      server.off('error', onError);
      resolveListen();
    });
  });
}

/** Reads request lines, answers each in order; resolves when the connection is gone and released. */
function serveConnection(
  socket: Socket,
  connectionId: number,
  dispatcher: ControlDispatcher,
  warn: (message: string) => void,
  releaseOnClose: () => boolean,
): Promise<void> {
  const framer = new LineFramer(MAX_REQUEST_BYTES);
  let chain: Promise<void> = Promise.resolve();
  const reply = (text: string): void => {
    if (!socket.destroyed && socket.writable) socket.write(text);
  };
  socket.on('data', (chunk: Buffer) => {
    const { lines, overflow } = framer.push(chunk);
    socket.pause(); // lines already read are bounded by one chunk; hold the rest back
    for (const line of lines) {
      chain = chain
        .then(async () => reply(encodeReply(await dispatcher.handleLine(connectionId, line))))
        .catch(() => void socket.destroy()); // a reply that cannot be encoded or sent ends this connection only
    }
    if (overflow) {
      const error = new SbmError('SBM_CONTROL', `request exceeds ${MAX_REQUEST_BYTES} bytes; closing the connection`);
      chain = chain.then(() => {
        socket.end(encodeReply({ id: null, error: errorToWire(error) }));
      });
      return;
    }
    chain = chain.then(() => {
      if (!socket.destroyed) socket.resume();
    });
  });
  // A client that vanishes mid-request is normal (killed sbm backup); its errors need no report.
  socket.on('error', () => undefined);
  return new Promise<void>((resolveDone) => {
    socket.on('close', () => {
      void chain
        .then(() =>
          releaseOnClose()
            ? dispatcher.release(connectionId, (error) => warn(`cannot delete a killed backup's snapshot: ${(error as Error).message}`))
            : undefined,
        )
        .then(resolveDone, resolveDone);
    });
  });
}
