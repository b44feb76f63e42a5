// Handshake option handlers (fixed newstyle, reference/nbd-protocol.md §3.2): each takes the
// option's data and the negotiation state and returns the reply frames plus what happens next.
// Pure functions: no I/O, no device access before GO (CVE-2019-14850 lesson).

import * as C from './constants.js';
import { type NbdExport, exportMatches, transmissionFlags } from './nbd-export.js';
import { optionReply } from './nbd-replies.js';
import {
  EXPORT_NAME_REPLY,
  EXPORT_NAME_ZERO_PAD_BYTES,
  INFO_BLOCK_SIZE,
  INFO_EXPORT,
  INFO_REQUEST_COUNT,
  INFO_TYPE,
  META_CONTEXT_HEAD,
  QUERY_COUNT,
  STRING_LENGTH,
} from './wire-table.js';

const readStringLength = STRING_LENGTH.reader('length');
const readQueryCount = QUERY_COUNT.reader('count');
const readInfoRequestCount = INFO_REQUEST_COUNT.reader('count');
const readInfoType = INFO_TYPE.reader('infoType');

export interface NegotiationState {
  structuredReplies: boolean;
  /** Context id of base:allocation when SET_META_CONTEXT selected it. */
  metaContextId: number | undefined;
  clientNoZeroes: boolean;
}

export interface OptionOutcome {
  readonly frames: Buffer[];
  /** continue: next option; transmission: export chosen; abort: reply sent, then close; drop: close now. */
  readonly next: 'continue' | 'transmission' | 'abort' | 'drop';
}

const ok = (frames: Buffer[]): OptionOutcome => ({ frames, next: 'continue' });
const fail = (option: number, code: number): OptionOutcome => ok([optionReply(option, code)]);

export function handleOption(option: number, data: Buffer, state: NegotiationState, target: NbdExport): OptionOutcome {
  switch (option) {
    case C.NBD_OPT_EXPORT_NAME:
      return exportName(data, state, target);
    case C.NBD_OPT_ABORT:
      return { frames: [optionReply(option, C.NBD_REP_ACK)], next: 'abort' };
    case C.NBD_OPT_LIST:
      return data.length !== 0
        ? fail(option, C.NBD_REP_ERR_INVALID)
        : ok([optionReply(option, C.NBD_REP_SERVER, lengthPrefixed(target.name)), optionReply(option, C.NBD_REP_ACK)]);
    case C.NBD_OPT_STARTTLS:
      // sbm offers no TLS: an option the server does not support is ERR_UNSUP (never TLS_REQD).
      return fail(option, data.length !== 0 ? C.NBD_REP_ERR_INVALID : C.NBD_REP_ERR_UNSUP);
    case C.NBD_OPT_INFO:
    case C.NBD_OPT_GO:
      return infoOrGo(option, data, state, target);
    case C.NBD_OPT_STRUCTURED_REPLY:
      if (data.length !== 0) return fail(option, C.NBD_REP_ERR_INVALID);
      state.structuredReplies = true;
      return ok([optionReply(option, C.NBD_REP_ACK)]);
    case C.NBD_OPT_LIST_META_CONTEXT:
    case C.NBD_OPT_SET_META_CONTEXT:
      return metaContext(option, data, state, target);
    default:
      return fail(option, C.NBD_REP_ERR_UNSUP);
  }
}

function exportName(data: Buffer, state: NegotiationState, target: NbdExport): OptionOutcome {
  // No error reply exists for EXPORT_NAME: an unknown name is a hard close.
  if (data.length > C.SBM_MAX_STRING_BYTES || !exportMatches(target, data.toString('utf8'))) return { frames: [], next: 'drop' };
  const pad = state.clientNoZeroes ? 0 : EXPORT_NAME_ZERO_PAD_BYTES;
  const out = Buffer.alloc(EXPORT_NAME_REPLY.sizeBytes + pad);
  EXPORT_NAME_REPLY.encode({ sizeBytes: target.sizeBytes, transmissionFlags: transmissionFlags(target, state.structuredReplies) }, out);
  return { frames: [out], next: 'transmission' };
}

function infoOrGo(option: number, data: Buffer, state: NegotiationState, target: NbdExport): OptionOutcome {
  // u32 namelen, name, u16 n, n x u16 info type; every length checked against the option length.
  const fixedBytes = STRING_LENGTH.sizeBytes + INFO_REQUEST_COUNT.sizeBytes;
  if (data.length < fixedBytes) return fail(option, C.NBD_REP_ERR_INVALID);
  const nameLength = readStringLength(data, 0);
  if (nameLength > data.length - fixedBytes || nameLength > C.SBM_MAX_STRING_BYTES) return fail(option, C.NBD_REP_ERR_INVALID);
  const nameEnd = STRING_LENGTH.sizeBytes + nameLength;
  const requestCount = readInfoRequestCount(data, nameEnd);
  const requestsAt = nameEnd + INFO_REQUEST_COUNT.sizeBytes;
  if (data.length !== requestsAt + INFO_TYPE.sizeBytes * requestCount) return fail(option, C.NBD_REP_ERR_INVALID);
  const name = data.toString('utf8', STRING_LENGTH.sizeBytes, nameEnd);
  if (!exportMatches(target, name)) return fail(option, C.NBD_REP_ERR_UNKNOWN);
  const requested = new Set<number>();
  for (let index = 0; index < requestCount; index++) requested.add(readInfoType(data, requestsAt + INFO_TYPE.sizeBytes * index));

  const frames: Buffer[] = [];
  const info = (payload: Buffer): void => {
    frames.push(optionReply(option, C.NBD_REP_INFO, payload));
  };
  // INFO_EXPORT always goes out, asked for or not: qemu never asks and drops a server without it.
  info(
    INFO_EXPORT.encode({
      infoType: C.NBD_INFO_EXPORT,
      sizeBytes: target.sizeBytes,
      transmissionFlags: transmissionFlags(target, state.structuredReplies),
    }),
  );
  if (requested.has(C.NBD_INFO_BLOCK_SIZE)) {
    info(
      INFO_BLOCK_SIZE.encode({
        infoType: C.NBD_INFO_BLOCK_SIZE,
        minimum: C.SBM_MIN_BLOCK_SIZE,
        preferred: C.SBM_PREFERRED_BLOCK_SIZE,
        maximum: C.SBM_MAX_PAYLOAD_BYTES,
      }),
    );
  }
  if (requested.has(C.NBD_INFO_NAME)) info(typed(C.NBD_INFO_NAME, target.name));
  if (requested.has(C.NBD_INFO_DESCRIPTION) && target.description !== undefined) info(typed(C.NBD_INFO_DESCRIPTION, target.description));
  frames.push(optionReply(option, C.NBD_REP_ACK));
  return { frames, next: option === C.NBD_OPT_GO ? 'transmission' : 'continue' };
}

function metaContext(option: number, data: Buffer, state: NegotiationState, target: NbdExport): OptionOutcome {
  const setting = option === C.NBD_OPT_SET_META_CONTEXT;
  if (setting && !state.structuredReplies) return fail(option, C.NBD_REP_ERR_INVALID);
  const parsed = parseMetaQueries(data);
  if (parsed === undefined) return fail(option, C.NBD_REP_ERR_INVALID);
  if (!exportMatches(target, parsed.exportName)) return fail(option, C.NBD_REP_ERR_UNKNOWN);
  let matched: boolean;
  if (setting) {
    // Exactly the contexts asked for (qemu wants one back, named as asked); unknown ones skipped.
    matched = parsed.queries.includes(C.NBD_META_CONTEXT_BASE_ALLOCATION);
    state.metaContextId = matched ? C.SBM_BASE_ALLOCATION_ID : undefined;
  } else {
    matched =
      parsed.queries.length === 0 || parsed.queries.some((query) => query === 'base:' || query === C.NBD_META_CONTEXT_BASE_ALLOCATION);
  }
  const frames: Buffer[] = [];
  if (matched) {
    const name = Buffer.from(C.NBD_META_CONTEXT_BASE_ALLOCATION);
    const payload = Buffer.alloc(META_CONTEXT_HEAD.sizeBytes + name.length);
    META_CONTEXT_HEAD.encode({ contextId: setting ? C.SBM_BASE_ALLOCATION_ID : 0 }, payload);
    name.copy(payload, META_CONTEXT_HEAD.sizeBytes);
    frames.push(optionReply(option, C.NBD_REP_META_CONTEXT, payload));
  }
  frames.push(optionReply(option, C.NBD_REP_ACK));
  return ok(frames);
}

/** u32 namelen, name, u32 nq, nq x (u32 len, query); undefined when a length overruns. */
export function parseMetaQueries(data: Buffer): { exportName: string; queries: string[] } | undefined {
  let at = 0;
  const string = (): string | undefined => {
    if (data.length - at < STRING_LENGTH.sizeBytes) return undefined;
    const length = readStringLength(data, at);
    at += STRING_LENGTH.sizeBytes;
    if (length > C.SBM_MAX_STRING_BYTES || length > data.length - at) return undefined;
    const text = data.toString('utf8', at, at + length);
    at += length;
    return text;
  };
  const exportName = string();
  if (exportName === undefined || data.length - at < QUERY_COUNT.sizeBytes) return undefined;
  const count = readQueryCount(data, at);
  at += QUERY_COUNT.sizeBytes;
  // Each query takes at least its length prefix, so a count beyond that cannot be honest.
  if (count > (data.length - at) / STRING_LENGTH.sizeBytes) return undefined;
  const queries: string[] = [];
  for (let index = 0; index < count; index++) {
    const query = string();
    if (query === undefined) return undefined;
    queries.push(query);
  }
  return at === data.length ? { exportName, queries } : undefined;
}

function lengthPrefixed(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(STRING_LENGTH.sizeBytes + bytes.length);
  STRING_LENGTH.encode({ length: bytes.length }, out);
  bytes.copy(out, STRING_LENGTH.sizeBytes);
  return out;
}

function typed(infoType: number, text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8').subarray(0, C.SBM_MAX_STRING_BYTES);
  const out = Buffer.alloc(INFO_TYPE.sizeBytes + bytes.length);
  INFO_TYPE.encode({ infoType }, out);
  bytes.copy(out, INFO_TYPE.sizeBytes);
  return out;
}
