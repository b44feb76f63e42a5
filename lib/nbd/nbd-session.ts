// The thin socket glue of one NBD connection: feeds received bytes to the sans-IO protocol, runs
// requests concurrently against the device (adjacent small READs/WRITEs received together as one
// device call, see nbd-request-batch.ts), and writes each reply whole as it completes (replies
// go out of order; those completed in one event-loop iteration share a writev). Backpressure: while the bytes of requests in flight (payloads, read buffers,
// replies not yet handed to the kernel) exceed the cap, the session stops pulling requests and
// pauses the socket, so a client cannot make the server buffer without bound.

import type { Socket } from 'node:net';
import { debugLog } from '../debug-log.js';

import type { BlockDevice } from '../block-device.js';
import type { BufferPool } from './buffer-pool.js';
import * as C from './constants.js';
import type { NbdExport } from './nbd-export.js';
import { requestErrorReply } from './nbd-replies.js';
import { RequestBatch, canBatch, runMerged } from './nbd-request-batch.js';
import { runRequest } from './nbd-request-runner.js';
import { type NbdAction, type NbdRequest, NbdServerProtocol } from './nbd-server-protocol.js';

const debug = debugLog('sbm:nbd');

export interface SessionLimits {
  /** Bytes of requests in flight before the session stops reading (default 64 MiB). */
  readonly maxInFlightBytes: number;
  /** Requests in flight before the session stops reading (default 64). */
  readonly maxInFlightRequests: number;
  /** A client that has not chosen an export by then is dropped (default 10 s). */
  readonly handshakeTimeoutMs: number;
  /** How long close() waits for in-flight requests and unread replies (default 10 s). */
  readonly drainTimeoutMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxInFlightBytes: 64 * 1024 * 1024,
  maxInFlightRequests: 64,
  handshakeTimeoutMs: 10_000,
  drainTimeoutMs: 10_000,
};

/** Fixed cost charged per request on top of its data, so tiny requests are bounded too. */
const REQUEST_OVERHEAD_BYTES = 64;

function costOf(request: NbdRequest): number {
  return REQUEST_OVERHEAD_BYTES + (request.type === C.NBD_CMD_READ || request.type === C.NBD_CMD_WRITE ? request.length : 0);
}

export class NbdSession {
  private readonly protocol: NbdServerProtocol;
  private inFlightBytes = 0;
  private inFlightRequests = 0;
  /** No more input is parsed: DISC, ABORT, EOF or server shutdown. */
  private stopped = false;
  /** The client shut its sending side: finish what it sent, then close. */
  private inputEnded = false;
  private pumping = false;
  private corked = false;
  /** Requests parsed in this pump pass that may still be joined by the next one. */
  private batch: RequestBatch | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  readonly done: Promise<void>;

  constructor(
    private readonly socket: Socket,
    private readonly device: BlockDevice,
    target: NbdExport,
    private readonly limits: SessionLimits,
    private readonly pool: BufferPool,
  ) {
    this.protocol = new NbdServerProtocol(target, (length) => pool.acquire(length));
    this.done = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => this.clearTimers());
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // EPIPE/ECONNRESET are how clients leave; nothing to report beyond debug.
      debug('socket error %s', error.code ?? error.message);
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      this.protocol.receive(chunk);
      this.pump();
    });
    // Replies the client has not read yet also hold memory (error replies are not "in flight").
    socket.on('drain', () => this.pump());
    socket.on('end', () => {
      this.inputEnded = true;
      this.pump();
    });
    this.handshakeTimer = setTimeout(() => {
      if (!this.protocol.inTransmission) {
        debug('handshake timeout');
        socket.destroy();
      }
    }, limits.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    socket.write(this.protocol.greeting());
  }

  /** Stops reading, lets in-flight requests reply, then closes. Resolves when the socket is closed. */
  shutdown(): Promise<void> {
    this.stop('server shutting down');
    // Requests already received but not started are refused rather than silently dropped.
    if (this.protocol.inTransmission && !this.socket.destroyed) {
      for (let action = this.protocol.next(); action !== undefined; action = this.protocol.next()) {
        if (action.kind === 'request') {
          if (action.request.data !== undefined) this.pool.release(action.request.data);
          this.write(requestErrorReply(action.request.cookie, C.NBD_ESHUTDOWN, action.request.structured, 'server is shutting down'));
        } else if (action.kind === 'send') {
          this.write(action.data);
        }
      }
    }
    return this.done;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    let exhausted = false;
    try {
      while (!this.stopped && !this.socket.destroyed && !this.saturated()) {
        const action = this.protocol.next();
        if (action === undefined) {
          exhausted = true;
          break;
        }
        this.handle(action);
      }
    } finally {
      this.pumping = false;
      this.startBatch();
    }
    if (this.stopped || this.socket.destroyed) return;
    // Requests already received still run after the client shuts its sending side.
    if (exhausted && this.inputEnded) this.stop('client closed its end');
    else if (this.saturated()) this.socket.pause();
    else if (this.socket.isPaused() && !this.inputEnded) this.socket.resume();
  }

  private saturated(): boolean {
    return (
      this.inFlightBytes >= this.limits.maxInFlightBytes ||
      this.inFlightRequests >= this.limits.maxInFlightRequests ||
      this.socket.writableLength >= this.limits.maxInFlightBytes
    );
  }

  private handle(action: NbdAction): void {
    if (action.kind !== 'request') this.startBatch();
    switch (action.kind) {
      case 'send':
        this.write(action.data);
        return;
      case 'transmission':
        if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
        this.handshakeTimer = undefined;
        return;
      case 'request':
        this.start(action.request);
        return;
      case 'close':
        debug('closing connection: %s', action.reason);
        if (action.graceful) this.stop(action.reason);
        else this.socket.destroy();
        return;
    }
  }

  private start(request: NbdRequest): void {
    this.inFlightBytes += costOf(request);
    this.inFlightRequests++;
    // Adjacent small READs/WRITEs parsed in this pass run as one device call (nbd-request-batch.ts).
    if (this.batch?.tryAdd(request) === true) return;
    this.startBatch();
    if (canBatch(request)) {
      this.batch = new RequestBatch(request);
      return;
    }
    this.launch(request);
  }

  /** Starts the pending batch, if any; called before anything else starts and at the end of a pass. */
  private startBatch(): void {
    const batch = this.batch;
    if (batch === undefined) return;
    this.batch = undefined;
    for (const run of batch.runs()) {
      if (run.length === 1) {
        this.launch(run[0] as NbdRequest);
        continue;
      }
      void runMerged(this.device, run, this.pool).then((frames) => {
        for (let index = 0; index < run.length; index++) this.finish(run[index] as NbdRequest, frames[index] as Buffer);
      });
    }
  }

  private launch(request: NbdRequest): void {
    void runRequest(this.device, request, this.pool).then((frame) => this.finish(request, frame));
  }

  private finish(request: NbdRequest, frame: Buffer): void {
    const cost = costOf(request);
    if (request.data !== undefined) this.pool.release(request.data);
    if (this.socket.destroyed || !this.socket.writable) return this.release(cost, frame);
    this.write(frame, () => this.release(cost, frame));
  }

  private release(cost: number, frame: Buffer): void {
    // The write callback runs once the frame is handed to the kernel (or the write failed):
    // either way the socket no longer needs the memory.
    this.pool.release(frame);
    this.inFlightBytes -= cost;
    this.inFlightRequests--;
    if (this.stopped) this.finishIfIdle();
    else this.pump();
  }

  /**
   * Writes one whole frame. Frames written in one event-loop iteration share a writev: the socket
   * stays corked until the check phase, so replies completed by several thread-pool callbacks of
   * the same poll phase (not only those of one microtask run) go out in one system call.
   */
  private write(frame: Buffer, onFlushed?: () => void): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(this.uncork);
    }
    this.socket.write(frame, onFlushed === undefined ? undefined : () => onFlushed());
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  private stop(reason: string): void {
    if (this.stopped) return;
    debug('stop: %s', reason);
    this.stopped = true;
    this.socket.pause();
    this.drainTimer = setTimeout(() => this.socket.destroy(), this.limits.drainTimeoutMs);
    this.drainTimer.unref();
    this.finishIfIdle();
  }

  private finishIfIdle(): void {
    if (this.inFlightRequests > 0 || this.socket.destroyed) return;
    this.socket.end(() => this.socket.destroy());
  }

  private clearTimers(): void {
    if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
    if (this.drainTimer !== undefined) clearTimeout(this.drainTimer);
  }
}
