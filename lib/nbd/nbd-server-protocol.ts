// The sans-IO NBD server: bytes in (receive), actions out (next). It owns the handshake and the
// parsing and validation of transmission requests; it never touches the device or a socket.
// The session pulls one action at a time, so it can stop pulling when too much is in flight
// (backpressure) without the protocol buffering work it has already parsed.
//
//   greeting -> client flags -> option* -> (GO | EXPORT_NAME) -> request* -> DISC
//
// A request that fails validation becomes a ready-made error reply ('send'); only valid requests
// reach the session as 'request', with offsets already narrowed to safe integers.

import * as C from './constants.js';
import { ByteQueue } from '../byte-queue.js';
import type { NbdExport } from './nbd-export.js';
import { type NegotiationState, handleOption } from './nbd-options.js';
import { optionReply, requestErrorReply } from './nbd-replies.js';
import { CLIENT_FLAGS, GREETING, OPTION_HEADER, REQUEST } from './wire-table.js';

export interface NbdRequest {
  readonly type: number;
  readonly flags: number;
  readonly cookie: bigint;
  readonly offset: number;
  readonly length: number;
  /** WRITE payload, exactly `length` bytes. */
  readonly data?: Buffer;
  /** Reply with structured chunks (READ, BLOCK_STATUS). */
  readonly structured: boolean;
  /** base:allocation context id, when selected. */
  readonly metaContextId: number | undefined;
}

export type NbdAction =
  | { readonly kind: 'send'; readonly data: Buffer }
  | { readonly kind: 'request'; readonly request: NbdRequest }
  /** The handshake is over: the export was chosen. */
  | { readonly kind: 'transmission' }
  /** graceful: finish in-flight requests and send their replies first (DISC, ABORT). */
  | { readonly kind: 'close'; readonly graceful: boolean; readonly reason: string };

type Phase =
  | { readonly name: 'client-flags' }
  | { readonly name: 'option-header' }
  | { readonly name: 'option-data'; readonly option: number; readonly length: number }
  | { readonly name: 'option-skip'; readonly option: number; remaining: number }
  | { readonly name: 'request-header' }
  | { readonly name: 'write-payload'; readonly request: NbdRequest }
  | { readonly name: 'write-skip'; readonly cookie: bigint; remaining: number; readonly error: number }
  | { readonly name: 'closed' };

/** Flags each command accepts (FUA on every command once SEND_FUA is advertised). */
const ALLOWED_FLAGS = new Map<number, number>([
  [C.NBD_CMD_READ, C.NBD_CMD_FLAG_FUA | C.NBD_CMD_FLAG_DF],
  [C.NBD_CMD_WRITE, C.NBD_CMD_FLAG_FUA],
  [C.NBD_CMD_DISC, C.NBD_CMD_FLAG_FUA],
  [C.NBD_CMD_FLUSH, C.NBD_CMD_FLAG_FUA],
  [C.NBD_CMD_TRIM, C.NBD_CMD_FLAG_FUA],
  [C.NBD_CMD_CACHE, C.NBD_CMD_FLAG_FUA],
  [C.NBD_CMD_WRITE_ZEROES, C.NBD_CMD_FLAG_FUA | C.NBD_CMD_FLAG_NO_HOLE | C.NBD_CMD_FLAG_FAST_ZERO],
  [C.NBD_CMD_BLOCK_STATUS, C.NBD_CMD_FLAG_FUA | C.NBD_CMD_FLAG_REQ_ONE],
]);
const WRITE_TYPES = new Set([C.NBD_CMD_WRITE, C.NBD_CMD_TRIM, C.NBD_CMD_WRITE_ZEROES]);

const readRequestMagic = REQUEST.reader('magic');
const readRequestFlags = REQUEST.reader('flags');
const readRequestType = REQUEST.reader('type');
const readRequestCookie = REQUEST.reader('cookie');
const readRequestOffset = REQUEST.reader('offset');
const readRequestLength = REQUEST.reader('length');

export class NbdServerProtocol {
  private readonly input: ByteQueue;
  /** Each request header is copied here and decoded at once (no allocation per request). */
  private readonly header = Buffer.alloc(REQUEST.sizeBytes);
  private phase: Phase = { name: 'client-flags' };
  private readonly state: NegotiationState = { structuredReplies: false, metaContextId: undefined, clientNoZeroes: false };
  private optionCount = 0;
  private readonly pending: NbdAction[] = [];

  /**
   * `allocate` provides WRITE payload buffers (a pool in the session; plain memory by default).
   * `releaseInput`, when given, takes back each received chunk once parsed (pooled read buffers).
   */
  constructor(
    private readonly target: NbdExport,
    private readonly allocate: (length: number) => Buffer = (length) => Buffer.allocUnsafe(length),
    releaseInput?: (chunk: Buffer) => void,
  ) {
    this.input = new ByteQueue(releaseInput);
  }

  /** The greeting, to send as soon as the client connects. */
  greeting(): Buffer {
    return GREETING.encode({
      nbdMagic: C.NBDMAGIC,
      optMagic: C.IHAVEOPT,
      handshakeFlags: C.NBD_FLAG_FIXED_NEWSTYLE | C.NBD_FLAG_NO_ZEROES,
    });
  }

  get closed(): boolean {
    return this.phase.name === 'closed';
  }

  /** What negotiation settled (for logs): structured replies, base:allocation, options seen. */
  get negotiated(): { structuredReplies: boolean; baseAllocation: boolean; options: number } {
    return {
      structuredReplies: this.state.structuredReplies,
      baseAllocation: this.state.metaContextId !== undefined,
      options: this.optionCount,
    };
  }

  get inTransmission(): boolean {
    return this.phase.name === 'request-header' || this.phase.name === 'write-payload' || this.phase.name === 'write-skip';
  }

  /**
   * Payload bytes of the WRITE whose payload is being received (0 otherwise): the session reserves
   * them before reading on, so a half-received payload never waits for memory held by others.
   */
  get pendingPayloadBytes(): number {
    return this.phase.name === 'write-payload' ? this.phase.request.length : 0;
  }

  /** Bytes received and not yet parsed. */
  get bufferedBytes(): number {
    return this.input.length;
  }

  receive(chunk: Buffer): void {
    this.input.push(chunk);
    if (this.phase.name === 'closed') this.input.clear();
  }

  /** Drops the bytes received but not parsed (the connection is gone). */
  dispose(): void {
    this.input.clear();
  }

  /** The next action, or undefined until more bytes arrive. */
  next(): NbdAction | undefined {
    for (;;) {
      const queued = this.pending.shift();
      if (queued !== undefined) return queued;
      if (!this.step()) return undefined;
    }
  }

  /** Every action available now (tests and simple callers). */
  drain(): NbdAction[] {
    const out: NbdAction[] = [];
    for (let action = this.next(); action !== undefined; action = this.next()) out.push(action);
    return out;
  }

  /** Advances one parsing step; false when it needs more bytes (or is closed). */
  private step(): boolean {
    const phase = this.phase;
    switch (phase.name) {
      case 'closed':
        return false;
      case 'client-flags':
        return this.need(CLIENT_FLAGS.sizeBytes) && this.clientFlags();
      case 'option-header':
        return this.need(OPTION_HEADER.sizeBytes) && this.optionHeader();
      case 'option-data':
        if (!this.need(phase.length)) return false;
        this.runOption(phase.option, this.input.take(phase.length));
        return true;
      case 'option-skip':
        phase.remaining -= this.input.skip(phase.remaining);
        if (phase.remaining > 0) return false;
        this.emit({ kind: 'send', data: optionReply(phase.option, C.NBD_REP_ERR_TOO_BIG) });
        this.phase = { name: 'option-header' };
        return true;
      case 'request-header':
        return this.need(REQUEST.sizeBytes) && this.requestHeader();
      case 'write-payload':
        if (!this.need(phase.request.length)) return false;
        this.writePayload(phase.request);
        return true;
      case 'write-skip':
        phase.remaining -= this.input.skip(phase.remaining);
        if (phase.remaining > 0) return false;
        this.emit({ kind: 'send', data: requestErrorReply(phase.cookie, phase.error, false, '') });
        this.phase = { name: 'request-header' };
        return true;
    }
  }

  private need(count: number): boolean {
    return this.input.length >= count;
  }

  private emit(action: NbdAction): void {
    this.pending.push(action);
  }

  private close(graceful: boolean, reason: string): true {
    this.phase = { name: 'closed' };
    this.input.clear();
    this.emit({ kind: 'close', graceful, reason });
    return true;
  }

  private clientFlags(): boolean {
    const { clientFlags } = CLIENT_FLAGS.decode(this.input.take(CLIENT_FLAGS.sizeBytes));
    // Any bit sbm did not offer means the client expects something else: drop it.
    if ((clientFlags & ~(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES)) !== 0) {
      return this.close(false, `unknown client flags 0x${clientFlags.toString(16)}`);
    }
    this.state.clientNoZeroes = (clientFlags & C.NBD_FLAG_C_NO_ZEROES) !== 0;
    this.phase = { name: 'option-header' };
    return true;
  }

  private optionHeader(): boolean {
    const header = OPTION_HEADER.decode(this.input.take(OPTION_HEADER.sizeBytes));
    if (header.magic !== C.IHAVEOPT) return this.close(false, 'bad option magic');
    if (++this.optionCount > C.SBM_MAX_OPTIONS) return this.close(false, `more than ${C.SBM_MAX_OPTIONS} options`);
    if (header.length > C.SBM_MAX_OPTION_BYTES) {
      if (header.length > C.SBM_MAX_OPTION_DISCARD_BYTES || header.option === C.NBD_OPT_EXPORT_NAME) {
        return this.close(false, `option ${header.option} carries ${header.length} bytes`);
      }
      this.phase = { name: 'option-skip', option: header.option, remaining: header.length };
      return true;
    }
    this.phase = { name: 'option-data', option: header.option, length: header.length };
    return true;
  }

  private runOption(option: number, data: Buffer): void {
    const outcome = handleOption(option, data, this.state, this.target);
    for (const frame of outcome.frames) this.emit({ kind: 'send', data: frame });
    if (outcome.next === 'transmission') {
      this.phase = { name: 'request-header' };
      this.emit({ kind: 'transmission' });
    } else if (outcome.next === 'abort') {
      this.close(true, 'client sent NBD_OPT_ABORT');
    } else if (outcome.next === 'drop') {
      this.close(false, 'EXPORT_NAME for an unknown export');
    } else {
      this.phase = { name: 'option-header' };
    }
  }

  private requestHeader(): boolean {
    // Field by field with the layout's readers: one request header per request, no object for it.
    const header = this.header;
    this.input.takeInto(header);
    const magic = readRequestMagic(header, 0);
    if (magic !== C.NBD_REQUEST_MAGIC) return this.close(false, `bad request magic 0x${magic.toString(16)}`);
    const type = readRequestType(header, 0);
    if (type === C.NBD_CMD_DISC) return this.close(true, 'client sent NBD_CMD_DISC');
    const flags = readRequestFlags(header, 0);
    const cookie = readRequestCookie(header, 0);
    const offset = readRequestOffset(header, 0);
    const length = readRequestLength(header, 0);
    const structured = this.state.structuredReplies && (type === C.NBD_CMD_READ || type === C.NBD_CMD_BLOCK_STATUS);
    const error = this.validate(type, flags, offset, length);
    if (type === C.NBD_CMD_WRITE) {
      if (length > C.SBM_MAX_DISCARD_PAYLOAD_BYTES) return this.close(false, `WRITE of ${length} bytes`);
      if (error !== 0 || length > C.SBM_MAX_PAYLOAD_BYTES) {
        // The payload is on its way whatever we answer: consume it, then refuse (nbdkit does the same).
        this.phase = { name: 'write-skip', cookie, remaining: length, error: error !== 0 ? error : C.NBD_EINVAL };
        return true;
      }
      const request = { type, flags, cookie, offset: Number(offset), length, structured: false, metaContextId: undefined };
      this.phase = { name: 'write-payload', request };
      return true;
    }
    if (error !== 0) {
      this.emit({ kind: 'send', data: requestErrorReply(cookie, error, structured, errorText(error)) });
      return true;
    }
    this.emit({
      kind: 'request',
      request: { type, flags, cookie, offset: Number(offset), length, structured, metaContextId: this.state.metaContextId },
    });
    return true;
  }

  private writePayload(request: NbdRequest): void {
    this.phase = { name: 'request-header' };
    // One copy out of the chunk list, so the socket's chunks are not pinned by a slow request.
    const data = this.allocate(request.length);
    this.input.takeInto(data);
    this.emit({ kind: 'request', request: { ...request, data } });
  }

  /** 0 when the request may run, else the NBD error to reply with (reference §4.3). */
  private validate(type: number, flags: number, offset: bigint, length: number): number {
    const allowed = ALLOWED_FLAGS.get(type);
    if (allowed === undefined || (flags & ~allowed) !== 0) return C.NBD_EINVAL;
    if (this.target.readOnly && WRITE_TYPES.has(type)) return C.NBD_EPERM;
    if (type === C.NBD_CMD_FLUSH) return offset === 0n && length === 0 ? 0 : C.NBD_EINVAL;
    if (type === C.NBD_CMD_READ) {
      if ((flags & C.NBD_CMD_FLAG_DF) !== 0 && !this.state.structuredReplies) return C.NBD_EINVAL;
      if (length > C.SBM_MAX_PAYLOAD_BYTES) return C.NBD_EOVERFLOW;
    }
    if (type === C.NBD_CMD_BLOCK_STATUS) {
      if (!this.state.structuredReplies || this.state.metaContextId === undefined || length === 0) return C.NBD_EINVAL;
    }
    if ((flags & C.NBD_CMD_FLAG_FAST_ZERO) !== 0 && this.target.readOnly) return C.NBD_EINVAL;
    // Bounds in bigint: offset is a u64 and must never wrap.
    if (offset + BigInt(length) > BigInt(this.target.sizeBytes)) {
      return type === C.NBD_CMD_WRITE || type === C.NBD_CMD_WRITE_ZEROES ? C.NBD_ENOSPC : C.NBD_EINVAL;
    }
    return 0;
  }
}

export function errorText(error: number): string {
  switch (error) {
    case C.NBD_EPERM:
      return 'export is read-only';
    case C.NBD_EINVAL:
      return 'invalid request (range, flags or command)';
    case C.NBD_ENOSPC:
      return 'write past the end of the disk';
    case C.NBD_EOVERFLOW:
      return 'request larger than the maximum block size';
    case C.NBD_ENOTSUP:
      return 'operation not supported';
    case C.NBD_ESHUTDOWN:
      return 'server is shutting down';
    default:
      return 'I/O error';
  }
}
