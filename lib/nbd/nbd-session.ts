// The thin socket glue of one NBD connection: feeds received bytes to the sans-IO protocol, runs
// requests concurrently against the device (adjacent small READs/WRITEs received together as one
// device call, see nbd-request-batch.ts), and writes each reply whole as it completes (replies
// go out of order; those completed in one event-loop iteration share a writev).
//
// Backpressure: every request is admitted against two caps before it starts: this connection's
// bytes in flight (payloads, read buffers, replies not yet handed to the kernel) and the server-wide
// InFlightBudget shared by all connections. A request that does not fit is parked (one at most) and
// the socket paused until its own replies drain (own cap) or the budget lets it in (first come,
// first served). A WRITE payload is reserved in full before it is read, so half-received payloads
// never hold memory while waiting for more. A client cannot make the server buffer without bound.

import type { Socket } from 'node:net';
import { debugLog } from '../debug-log.js';

import type { BlockDevice } from '../block-device.js';
import type { BufferPool } from './buffer-pool.js';
import * as C from './constants.js';
import type { BudgetWaiter, InFlightBudget } from './in-flight-budget.js';
import type { NbdExport } from './nbd-export.js';
import { requestErrorReply } from './nbd-replies.js';
import { RequestBatch, canBatch, runMerged } from './nbd-request-batch.js';
import { runRequest } from './nbd-request-runner.js';
import { type NbdAction, type NbdRequest, NbdServerProtocol } from './nbd-server-protocol.js';

const debug = debugLog('sbm:nbd');

export interface SessionLimits {
  /**
   * Bytes of requests in flight on one connection before it stops reading (default 40 MiB: one
   * largest request fits, and it stays well below the server-wide budget, so one client that never
   * reads its replies cannot take all of it).
   */
  readonly maxInFlightBytes: number;
  /** Requests in flight before the session stops reading (default 64). */
  readonly maxInFlightRequests: number;
  /** A client that has not chosen an export by then is dropped (default 10 s). */
  readonly handshakeTimeoutMs: number;
  /** How long close() waits for in-flight requests and unread replies (default 10 s). */
  readonly drainTimeoutMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxInFlightBytes: 40 * 1024 * 1024,
  maxInFlightRequests: 64,
  handshakeTimeoutMs: 10_000,
  drainTimeoutMs: 10_000,
};

/** Fixed cost charged per request on top of its data, so tiny requests are bounded too. */
const REQUEST_OVERHEAD_BYTES = 64;

function costOf(request: NbdRequest): number {
  return REQUEST_OVERHEAD_BYTES + (request.type === C.NBD_CMD_READ || request.type === C.NBD_CMD_WRITE ? request.length : 0);
}

/** Why a request cannot start yet: its own connection is full, or the server-wide budget is. */
type Admission = 'yes' | 'own' | 'budget';

export class NbdSession implements BudgetWaiter {
  private readonly protocol: NbdServerProtocol;
  /** This connection's share of the budget: admitted requests, a payload reservation, queued error replies. */
  private inFlightBytes = 0;
  private inFlightRequests = 0;
  /** A parsed request waiting for admission (it owns its WRITE payload until then). */
  private parked: NbdRequest | undefined;
  /** Budget taken for the WRITE payload being received; it becomes that request's cost. */
  private payloadReservedBytes = 0;
  /** What the last refused take() asked the budget for (decides the waiting line). */
  private wantedBytes = 0;
  /** Replies handed to the kernel: the server's sweeps compare it to see progress. */
  private completed = 0;
  private completedAtSweep = 0;
  private quietSince = Date.now();
  private readonly connectedAt = Date.now();
  /** Who is connected, for DEBUG=sbm:nbd. */
  private readonly peer: string;
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
    private readonly budget: InFlightBudget,
    pooledInput = false,
  ) {
    // Pooled input chunks (pooled-reads.ts) go back to the pool once parsed.
    const releaseInput = pooledInput ? (chunk: Buffer) => pool.release(chunk) : undefined;
    this.protocol = new NbdServerProtocol(target, (length) => pool.acquire(length), releaseInput);
    this.peer = socket.remoteAddress === undefined ? 'a Unix-socket client' : `${socket.remoteAddress}:${socket.remotePort}`;
    debug('client connected: %s', this.peer);
    this.done = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => this.released());
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // EPIPE/ECONNRESET are how clients leave; nothing to report beyond debug.
      debug('socket error %s', error.code ?? error.message);
      socket.destroy();
    });
    // Replies the client has not read yet hold memory: saturated() waits for them to drain.
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

  /** Bytes received from the client (the socket's reader hands them over: pooled-reads.ts). */
  receive(chunk: Buffer): void {
    this.protocol.receive(chunk);
    this.pump();
  }

  /** Stops reading, lets in-flight requests reply, then closes. Resolves when the socket is closed. */
  shutdown(): Promise<void> {
    this.stop('server shutting down');
    // Requests already received but not started are refused rather than silently dropped.
    if (this.protocol.inTransmission && !this.socket.destroyed) {
      if (this.parked !== undefined) this.refuse(this.parked);
      this.parked = undefined;
      for (let action = this.protocol.next(); action !== undefined; action = this.protocol.next()) {
        if (action.kind === 'request') this.refuse(action.request);
        else if (action.kind === 'send') this.write(action.data);
      }
    }
    return this.done;
  }

  /** Budget was released and this session is first in line. */
  onBudget(): void {
    this.pump();
  }

  /** Ends an idle connection gracefully (the server is at its connection limit). */
  evict(reason: string): void {
    this.stop(reason);
  }

  /** Drops the connection at once (its client stopped reading while others wait for budget). */
  drop(reason: string): void {
    debug('dropping connection: %s', reason);
    this.socket.destroy();
  }

  /** Called by the server's periodic sweep: notes when the session last made progress. */
  observe(now: number): void {
    if (this.completed !== this.completedAtSweep || !this.protocol.inTransmission) {
      this.completedAtSweep = this.completed;
      this.quietSince = now;
    }
  }

  /** How long the session has been idle in transmission (nothing in flight, nothing done), or -1. */
  idleMs(now: number): number {
    if (this.stopped || !this.protocol.inTransmission || this.inFlightBytes > 0 || this.parked !== undefined) return -1;
    return this.completed === this.completedAtSweep ? now - this.quietSince : -1;
  }

  /** How long a client still in the handshake has been connected, or -1 once it chose an export. */
  handshakeMs(now: number): number {
    return this.stopped || this.protocol.inTransmission || this.socket.destroyed ? -1 : now - this.connectedAt;
  }

  /**
   * How long the session has held budget without completing anything while its client is the
   * holdup (replies it does not read, or a WRITE payload it does not finish sending), or -1.
   */
  stalledMs(now: number): number {
    if (this.inFlightBytes === 0 || this.completed !== this.completedAtSweep) return -1;
    if (this.socket.writableLength === 0 && this.payloadReservedBytes === 0) return -1;
    return now - this.quietSince;
  }

  private refuse(request: NbdRequest): void {
    if (request.data !== undefined) this.pool.release(request.data);
    this.write(requestErrorReply(request.cookie, C.NBD_ESHUTDOWN, request.structured, 'server is shutting down'));
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    let exhausted = false;
    let waitFor: Admission = 'yes';
    try {
      while (!this.stopped && !this.socket.destroyed) {
        const parked = this.parked;
        if (parked !== undefined) {
          waitFor = this.admit(parked);
          if (waitFor !== 'yes') break;
          this.parked = undefined;
          this.start(parked);
          continue;
        }
        if (this.saturated()) break;
        const action = this.protocol.next();
        if (action === undefined) {
          exhausted = true;
          break;
        }
        // Every request goes through the one admission step above.
        if (action.kind === 'request') this.parked = action.request;
        else this.handle(action);
      }
    } finally {
      this.pumping = false;
      this.startBatch();
    }
    if (this.stopped || this.socket.destroyed) {
      this.budget.leave(this);
      return;
    }
    if (exhausted && !this.inputEnded && this.payloadReservedBytes === 0 && this.protocol.pendingPayloadBytes > 0) {
      waitFor = this.reservePayload(this.protocol.pendingPayloadBytes);
      exhausted = waitFor === 'yes';
    }
    if (waitFor === 'budget') this.budget.wait(this, this.wantedBytes);
    else this.budget.leave(this);
    // Requests already received still run after the client shuts its sending side.
    if (exhausted && this.inputEnded) this.stop('client closed its end');
    else if (!exhausted) this.socket.pause();
    else if (this.socket.isPaused() && !this.inputEnded) this.socket.resume();
  }

  /** Per-connection limits checked before parsing more (bytes are checked per request in admit). */
  private saturated(): boolean {
    return this.inFlightRequests >= this.limits.maxInFlightRequests || this.socket.writableLength >= this.limits.maxInFlightBytes;
  }

  /** Charges `request` to this connection and the server-wide budget, if both have room. */
  private admit(request: NbdRequest): Admission {
    const cost = costOf(request);
    if (request.data !== undefined && this.payloadReservedBytes > 0) {
      // The reservation was made for this very payload (the protocol parses one WRITE at a time).
      const extra = cost - this.payloadReservedBytes;
      this.payloadReservedBytes = 0;
      this.inFlightBytes += extra;
      this.budget.charge(extra);
      return 'yes';
    }
    const verdict = this.take(cost);
    if (verdict === 'yes') this.inFlightBytes += cost;
    return verdict;
  }

  private reservePayload(length: number): Admission {
    const cost = REQUEST_OVERHEAD_BYTES + length;
    const verdict = this.take(cost);
    if (verdict === 'yes') {
      this.payloadReservedBytes = cost;
      this.inFlightBytes += cost;
    }
    return verdict;
  }

  /** A connection with nothing in flight may always take one request, however large. */
  private take(cost: number): Admission {
    if (this.inFlightBytes > 0 && this.inFlightBytes + cost > this.limits.maxInFlightBytes) return 'own';
    if (this.budget.tryTake(cost, this)) return 'yes';
    this.wantedBytes = cost;
    return 'budget';
  }

  private handle(action: NbdAction): void {
    if (action.kind !== 'request') this.startBatch();
    switch (action.kind) {
      case 'send': {
        // Error replies to invalid requests are charged too, so a flood of them is bounded.
        const bytes = action.data.length;
        this.inFlightBytes += bytes;
        this.budget.charge(bytes);
        this.write(action.data, () => this.releaseBytes(bytes));
        return;
      }
      case 'transmission':
        debug('negotiated with %s: %o', this.peer, this.protocol.negotiated);
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
    if (this.socket.destroyed || !this.socket.writable) {
      this.release(cost, frame);
      return;
    }
    this.write(frame, () => this.release(cost, frame));
  }

  private release(cost: number, frame: Buffer): void {
    // The write callback runs once the frame is handed to the kernel (or the write failed):
    // either way the socket no longer needs the memory.
    this.pool.release(frame);
    this.inFlightRequests--;
    this.completed++;
    this.releaseBytes(cost);
  }

  private releaseBytes(bytes: number): void {
    this.inFlightBytes -= bytes;
    this.budget.release(bytes);
    if (this.stopped) this.finishIfIdle();
    else this.pump();
  }

  /** The socket closed: give back what no request will release (a parked request, a payload reservation). */
  private released(): void {
    debug('client disconnected: %s after %d ms, %d replies', this.peer, Date.now() - this.connectedAt, this.completed);
    this.clearTimers();
    this.budget.leave(this);
    this.protocol.dispose();
    if (this.parked?.data !== undefined) this.pool.release(this.parked.data);
    this.parked = undefined;
    if (this.payloadReservedBytes > 0) {
      this.inFlightBytes -= this.payloadReservedBytes;
      this.budget.release(this.payloadReservedBytes);
      this.payloadReservedBytes = 0;
    }
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
