// A larger kernel send buffer for clients on a Unix socket. Linux's default (212,992 bytes) is
// smaller than one 256 KiB READ reply, so every such reply took two writes, with a trip through
// the event loop between them while the client drained the socket. With 1 MiB asked for (the
// kernel doubles it), several replies fit: nbdcopy's sequential read of 1 GiB took 18% less
// time (BENCHMARKS.md). TCP connections keep the kernel's own autotuning.
//
// Node has no setsockopt; the sockopt package (a small N-API addon) provides it. It is an
// optional dependency, so an install where it does not build still works. Where it does not load,
// or off Linux (the option numbers below are Linux's), sockets keep their default.
// Kernel memory stays bounded: only MAX_ENLARGED_CONNECTIONS live connections get the larger
// buffer, so clients that never read their replies can pin at most 16 x 2 MiB.

import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { debugLog } from '../debug-log.js';

const debug = debugLog('sbm:nbd');

/** What is asked for; Linux doubles it for its own bookkeeping. */
export const ENLARGED_SEND_BUFFER_BYTES = 1024 * 1024;
export const MAX_ENLARGED_CONNECTIONS = 16;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;

export type SetSendBufferSize = (socket: Socket, bytes: number) => void;

export class SendBufferGrants {
  private granted = 0;

  constructor(private readonly setSize: SetSendBufferSize | undefined = loadSetSendBufferSize()) {}

  /** Connections that hold a larger send buffer now. */
  get live(): number {
    return this.granted;
  }

  /**
   * Enlarges the send buffer of `socket`, a connection on a Unix socket, while fewer than
   * MAX_ENLARGED_CONNECTIONS hold one; its grant returns when it closes. False when it keeps
   * the default.
   */
  grant(socket: Socket): boolean {
    if (this.setSize === undefined || this.granted >= MAX_ENLARGED_CONNECTIONS) return false;
    try {
      this.setSize(socket, ENLARGED_SEND_BUFFER_BYTES);
    } catch (error) {
      debug('send buffer left at its default: %s', (error as Error).message);
      return false;
    }
    this.granted++;
    socket.once('close', () => this.granted--);
    return true;
  }
}

function loadSetSendBufferSize(): SetSendBufferSize | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const { setsockopt } = createRequire(import.meta.url)('sockopt') as {
      setsockopt: (socket: Socket, level: number, option: number, value: number) => void;
    };
    return (socket, bytes) => setsockopt(socket, SOL_SOCKET, SO_SNDBUF, bytes);
  } catch (error) {
    debug('sockopt did not load, send buffers keep their default: %s', (error as Error).message);
    return undefined;
  }
}
