// Wire format of the mount control channel, one JSON object per line in each direction:
//
//   request  {"id": <integer>, "op": <name>, "args": {...}}
//   reply    {"id": <same integer | null>, "result": <value>}
//         or {"id": <same integer | null>, "error": {"code": "SBM_*", "message": <detail>, "data": {...}}}
//
//   op              args                                   result
//   token           {}                                     {token}
//   changedSince    {since, audit?: auto|full|directory,   {sinceKind, bandSizeBytes, report,
//                    returnWarnings?, strict?}               warnings (with returnWarnings)}
//   snapshotCreate  {name}                                 SnapshotInfo
//   snapshotList    {}                                     {snapshots: SnapshotInfo[]}
//   snapshotDelete  {name}                                 {deleted}
//   snapshotRevert  {name}                                 {bandsChanged}
//   geometry        {}                                     {sizeBytes, bandSizeBytes}
//   read            {offset, length}                       {data: base64}
//   write           {offset, data: base64}                 {}
//   zero            {offset, length}                       {}
//   flush           {}                                     {}
//   grow            {sizeBytes}                            {}
//
// read/write/zero/flush/grow are `sbm sync`'s writes into a mounted bundle: they run through the
// mount's own engine, so its tracker records them and copy-on-write protects its snapshots.
//
// With returnWarnings, warnings the request raises come back in the reply (strict: the request
// fails with SBM_STRICT at the first, as the caller's own --strict would); without it (an older
// client) they go to the mount's own warning output. Unknown args are ignored, so an older mount
// simply leaves `warnings` out.
//
// The op names are the wire's and stay as mounts already speak them: `changedSince` is
// BundleSession.changedBandsSince run by the mount (ControlClient.changedBandsSince sends it).
//
// `message` is the error's detail without the leading code; the client rebuilds an SbmError with
// the same code, so exit statuses (10 for refused tokens) survive the trip. id is null when the
// request was too malformed to carry one.

import { ERROR_CODES, SbmError, type SbmErrorCode } from '../errors.js';
import type { AuditMode } from '../tracking/tracker-types.js';
import type { SbmWarning } from '../warnings.js';

export type ControlRequest =
  | { readonly id: number; readonly op: 'token' | 'snapshotList' }
  | {
      readonly id: number;
      readonly op: 'changedSince';
      readonly since: string;
      readonly audit?: AuditMode;
      readonly returnWarnings?: boolean;
      readonly strict?: boolean;
    }
  | { readonly id: number; readonly op: 'snapshotCreate' | 'snapshotDelete' | 'snapshotRevert'; readonly name: string }
  | { readonly id: number; readonly op: 'geometry' | 'flush' }
  | { readonly id: number; readonly op: 'read' | 'zero'; readonly offset: number; readonly length: number }
  | { readonly id: number; readonly op: 'write'; readonly offset: number; readonly data: string }
  | { readonly id: number; readonly op: 'grow'; readonly sizeBytes: number };

export type ControlOp = ControlRequest['op'];

export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly data: Record<string, unknown>;
}

export type ControlReply =
  | { readonly id: number | null; readonly result: unknown }
  | { readonly id: number | null; readonly error: WireError };

const NO_ARGS_OPS = new Set<string>(['token', 'snapshotList', 'geometry', 'flush']);
const NAME_OPS = new Set<string>(['snapshotCreate', 'snapshotDelete', 'snapshotRevert']);
const AUDIT_MODES = new Set<string>(['auto', 'full', 'directory']);
/** Longer than any snapshot name, token or time `--since` accepts. */
const MAX_STRING_ARG = 1024;
/** Bytes one read or write request moves (a write's base64 fits MAX_REQUEST_BYTES). */
export const MAX_IO_BYTES = 1024 * 1024;

/** Decodes one request line; throws SBM_CONTROL (with data.id when one was readable). */
export function parseRequest(line: string): ControlRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new SbmError('SBM_CONTROL', 'request is not valid JSON', { id: null });
  }
  if (!isRecord(value)) throw new SbmError('SBM_CONTROL', 'request is not a JSON object', { id: null });
  const id = value.id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)
    throw new SbmError('SBM_CONTROL', 'request id is not a non-negative integer', { id: null });
  const op = value.op;
  const args = value.args ?? {};
  if (!isRecord(args)) throw new SbmError('SBM_CONTROL', `request ${id}: args is not an object`, { id });
  if (typeof op !== 'string') throw new SbmError('SBM_CONTROL', `request ${id}: op is not a string`, { id });
  if (NO_ARGS_OPS.has(op)) return { id, op: op as 'token' | 'snapshotList' | 'geometry' | 'flush' };
  if (op === 'read' || op === 'zero') {
    const offset = countArg(args, 'offset', id);
    const length = countArg(args, 'length', id);
    if (op === 'read' && length > MAX_IO_BYTES)
      throw new SbmError('SBM_CONTROL', `request ${id}: read length over ${MAX_IO_BYTES}`, { id });
    return { id, op, offset, length };
  }
  if (op === 'write') {
    const data = args.data;
    if (typeof data !== 'string' || data.length > Math.ceil(MAX_IO_BYTES / 3) * 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) {
      throw new SbmError('SBM_CONTROL', `request ${id}: data must be base64 of at most ${MAX_IO_BYTES} bytes`, { id });
    }
    return { id, op, offset: countArg(args, 'offset', id), data };
  }
  if (op === 'grow') return { id, op, sizeBytes: countArg(args, 'sizeBytes', id) };
  if (NAME_OPS.has(op)) return { id, op: op as 'snapshotCreate', name: stringArg(args, 'name', id) };
  if (op === 'changedSince') {
    const since = stringArg(args, 'since', id);
    const audit = args.audit;
    if (audit !== undefined && (typeof audit !== 'string' || !AUDIT_MODES.has(audit))) {
      throw new SbmError('SBM_CONTROL', `request ${id}: audit must be auto, full or directory`, { id });
    }
    const returnWarnings = booleanArg(args, 'returnWarnings', id);
    const strict = booleanArg(args, 'strict', id);
    return {
      id,
      op,
      since,
      ...(audit === undefined ? {} : { audit: audit as AuditMode }),
      ...(returnWarnings === undefined ? {} : { returnWarnings }),
      ...(strict === undefined ? {} : { strict }),
    };
  }
  throw new SbmError('SBM_CONTROL', `request ${id}: unknown op "${op.slice(0, 64)}"`, { id, op: op.slice(0, 64) });
}

export function encodeRequest(request: ControlRequest): string {
  const { id, op, ...args } = request;
  return `${JSON.stringify({ id, op, args })}\n`;
}

export function encodeReply(reply: ControlReply): string {
  return `${JSON.stringify(reply, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value))}\n`;
}

/** The wire form of any thrown value; non-sbm errors become SBM_INTERNAL (they are bugs). */
export function errorToWire(error: unknown): WireError {
  if (error instanceof SbmError) {
    const prefix = `${error.code}: `;
    const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    return { code: error.code, message, data: jsonSafe(error.data) };
  }
  return { code: 'SBM_INTERNAL', message: error instanceof Error ? error.message : String(error), data: {} };
}

/** Rebuilds the SbmError a reply carries; an unknown code becomes SBM_CONTROL. */
export function errorFromWire(wire: WireError): SbmError {
  if (Object.hasOwn(ERROR_CODES, wire.code)) return new SbmError(wire.code as SbmErrorCode, wire.message, { ...wire.data, remote: true });
  return new SbmError('SBM_CONTROL', `the mount replied with unknown error ${wire.code}: ${wire.message}`, { code: wire.code });
}

/** Decodes one reply line; throws SBM_CONTROL when it is not a reply. */
export function parseReply(line: string): ControlReply {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new SbmError('SBM_CONTROL', 'reply from the mount is not valid JSON');
  }
  if (!isRecord(value) || !(typeof value.id === 'number' || value.id === null))
    throw new SbmError('SBM_CONTROL', 'reply from the mount has no id');
  const id = value.id;
  if ('error' in value) {
    const error = value.error;
    if (!isRecord(error) || typeof error.code !== 'string' || typeof error.message !== 'string')
      throw new SbmError('SBM_CONTROL', 'reply from the mount has a malformed error');
    return { id, error: { code: error.code, message: error.message, data: isRecord(error.data) ? error.data : {} } };
  }
  if (!('result' in value)) throw new SbmError('SBM_CONTROL', 'reply from the mount has neither result nor error');
  return { id, result: value.result };
}

function stringArg(args: Record<string, unknown>, key: string, id: number): string {
  const value = args[key];
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_STRING_ARG) {
    throw new SbmError('SBM_CONTROL', `request ${id}: ${key} must be a non-empty string of at most ${MAX_STRING_ARG} characters`, { id });
  }
  return value;
}

function countArg(args: Record<string, unknown>, key: string, id: number): number {
  const value = args[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw new SbmError('SBM_CONTROL', `request ${id}: ${key} must be a non-negative integer`, { id });
  return value;
}

function booleanArg(args: Record<string, unknown>, key: string, id: number): boolean | undefined {
  const value = args[key];
  if (value !== undefined && typeof value !== 'boolean')
    throw new SbmError('SBM_CONTROL', `request ${id}: ${key} must be true or false`, { id });
  return value;
}

/** The warnings of a changedSince (changedBandsSince) reply; anything else there is a broken reply. */
export function parseReplyWarnings(value: unknown): SbmWarning[] {
  if (value === undefined) return []; // an older mount: its warnings went to its own output
  if (
    !Array.isArray(value) ||
    !value.every((item) => isRecord(item) && typeof item.code === 'string' && typeof item.message === 'string')
  ) {
    throw new SbmError('SBM_CONTROL', 'reply from the mount has malformed warnings');
  }
  return value.map((item: Record<string, unknown>) => ({
    code: item.code as string,
    message: item.message as string,
    ...(isRecord(item.data) ? { data: item.data } : {}),
  }));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonSafe(data: Readonly<Record<string, unknown>>): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(data, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value))) as Record<
      string,
      unknown
    >;
  } catch {
    return {}; // circular or otherwise unserialisable data: the code and message still travel
  }
}
