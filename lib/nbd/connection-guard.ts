// Keeps a server answering new clients whatever the connected ones do. Two rules, both enforced by
// a periodic sweep (a quarter of the shorter timeout, at most 5 s) so the request path pays nothing:
//
// - Connection limit: a client arriving when maxConnections are open takes the place of the
//   connection idle longest (in transmission, nothing in flight, no reply completed) for at least
//   idleTimeoutMs; failing that, of the client longest in the handshake for over a second (real
//   clients finish it in milliseconds; slow ones are dropped at handshakeTimeoutMs anyway); if
//   none, the newcomer is refused (closed at once). Nothing is dropped below the limit: an idle
//   VM disk is normal.
// - Stalled clients: while some connection waits for the server-wide in-flight budget, a
//   connection that has held budget for stallTimeoutMs without completing a request, because its
//   client does not read the replies (or does not finish sending a WRITE payload), is dropped, so
//   its bytes go back to the ones waiting. Without that, clients that never read could keep the
//   whole budget (each one holds at most its own cap, but there may be many of them).
//
// Clients still in the handshake have their own deadline (SessionLimits.handshakeTimeoutMs).

import { debugLog } from '../debug-log.js';
import type { InFlightBudget } from './in-flight-budget.js';
import type { NbdSession } from './nbd-session.js';

const debug = debugLog('sbm:nbd');

/** At the connection limit, a client still in the handshake after this long may give way. */
const HANDSHAKE_GRACE_MS = 1000;

export interface ConnectionGuardLimits {
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  readonly stallTimeoutMs: number;
}

export class ConnectionGuard {
  readonly sessions = new Set<NbdSession>();
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly limits: ConnectionGuardLimits,
    private readonly budget: InFlightBudget,
  ) {
    const sweepMs = Math.max(10, Math.min(5000, Math.floor(Math.min(limits.idleTimeoutMs, limits.stallTimeoutMs) / 4)));
    this.#timer = setInterval(() => this.sweep(Date.now()), sweepMs);
    this.#timer.unref();
  }

  /** Whether a new connection may be served now (evicting the longest-idle one if needed). */
  admit(): boolean {
    if (this.sessions.size < this.limits.maxConnections) return true;
    const now = Date.now();
    let victim: NbdSession | undefined;
    let longest = this.limits.idleTimeoutMs - 1;
    // Insertion order: on a tie the older connection goes first.
    for (const session of this.sessions) {
      const idle = session.idleMs(now);
      if (idle > longest) {
        longest = idle;
        victim = session;
      }
    }
    if (victim !== undefined) {
      victim.evict(`idle for ${longest} ms at the connection limit`);
      this.sessions.delete(victim);
      return true;
    }
    let slowest = HANDSHAKE_GRACE_MS - 1;
    for (const session of this.sessions) {
      const connected = session.handshakeMs(now);
      if (connected > slowest) {
        slowest = connected;
        victim = session;
      }
    }
    if (victim !== undefined) {
      victim.drop(`still in the handshake after ${slowest} ms at the connection limit`);
      this.sessions.delete(victim);
      return true;
    }
    debug('refusing a connection: %d open, none idle for %d ms', this.sessions.size, this.limits.idleTimeoutMs);
    return false;
  }

  add(session: NbdSession): void {
    this.sessions.add(session);
    void session.done.then(() => this.sessions.delete(session));
  }

  close(): void {
    clearInterval(this.#timer);
  }

  private sweep(now: number): void {
    for (const session of this.sessions) session.observe(now);
    if (this.budget.waiting === 0) return;
    for (const session of this.sessions) {
      const stalled = session.stalledMs(now);
      if (stalled >= this.limits.stallTimeoutMs) session.drop(`replies unread for ${stalled} ms while others wait for memory`);
    }
  }
}
