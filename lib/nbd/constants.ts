// NBD protocol constants, named as in the spec (NetworkBlockDevice/nbd : doc/proto.md) with the
// spec's radix: magics and flag masks in hex, enumerations in decimal. Integers on the wire are
// big-endian. Only what sbm speaks or must recognise is listed.

// Magics.
export const NBDMAGIC = 0x4e42444d41474943n;
export const IHAVEOPT = 0x49484156454f5054n;
export const NBD_REP_MAGIC = 0x0003e889045565a9n;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

// Handshake flags (server, u16) and client flags (u32).
export const NBD_FLAG_FIXED_NEWSTYLE = 0x0001;
export const NBD_FLAG_NO_ZEROES = 0x0002;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 0x00000001;
export const NBD_FLAG_C_NO_ZEROES = 0x00000002;

// Option types (u32).
export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;
export const NBD_OPT_EXTENDED_HEADERS = 11;

// Option reply types (u32); errors have bit 31 set.
export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
export const NBD_REP_FLAG_ERROR = 0x80000000;
export const NBD_REP_ERR_UNSUP = 0x80000001;
export const NBD_REP_ERR_POLICY = 0x80000002;
export const NBD_REP_ERR_INVALID = 0x80000003;
export const NBD_REP_ERR_PLATFORM = 0x80000004;
export const NBD_REP_ERR_TLS_REQD = 0x80000005;
export const NBD_REP_ERR_UNKNOWN = 0x80000006;
export const NBD_REP_ERR_SHUTDOWN = 0x80000007;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = 0x80000008;
export const NBD_REP_ERR_TOO_BIG = 0x80000009;

// Info types (u16) inside NBD_REP_INFO.
export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

// Transmission flags (u16).
export const NBD_FLAG_HAS_FLAGS = 0x0001;
export const NBD_FLAG_READ_ONLY = 0x0002;
export const NBD_FLAG_SEND_FLUSH = 0x0004;
export const NBD_FLAG_SEND_FUA = 0x0008;
export const NBD_FLAG_ROTATIONAL = 0x0010;
export const NBD_FLAG_SEND_TRIM = 0x0020;
export const NBD_FLAG_SEND_WRITE_ZEROES = 0x0040;
export const NBD_FLAG_SEND_DF = 0x0080;
export const NBD_FLAG_CAN_MULTI_CONN = 0x0100;
export const NBD_FLAG_SEND_RESIZE = 0x0200;
export const NBD_FLAG_SEND_CACHE = 0x0400;
export const NBD_FLAG_SEND_FAST_ZERO = 0x0800;

// Command types (u16).
export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

// Command flags (u16).
export const NBD_CMD_FLAG_FUA = 0x0001;
export const NBD_CMD_FLAG_NO_HOLE = 0x0002;
export const NBD_CMD_FLAG_DF = 0x0004;
export const NBD_CMD_FLAG_REQ_ONE = 0x0008;
export const NBD_CMD_FLAG_FAST_ZERO = 0x0010;

// Structured reply chunk types (u16) and chunk flags (u16).
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR = 0x8001;
export const NBD_REPLY_TYPE_ERROR_OFFSET = 0x8002;
export const NBD_REPLY_FLAG_DONE = 0x0001;

// Error values (u32) in replies.
export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_ENOMEM = 12;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

// base:allocation extent flags.
export const NBD_META_CONTEXT_BASE_ALLOCATION = 'base:allocation';
export const NBD_STATE_HOLE = 0x0001;
export const NBD_STATE_ZERO = 0x0002;

// sbm's limits (reference/nbd-protocol.md §5 and §9).
/** Block sizes advertised in NBD_INFO_BLOCK_SIZE: the spec's defaults. */
export const SBM_MIN_BLOCK_SIZE = 1;
export const SBM_PREFERRED_BLOCK_SIZE = 4096;
export const SBM_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;
/** An oversize WRITE payload up to this is read and discarded, then refused; beyond, disconnect. */
export const SBM_MAX_DISCARD_PAYLOAD_BYTES = 128 * 1024 * 1024;
/** Option data handled in full; bigger is skipped with ERR_TOO_BIG up to the discard limit. */
export const SBM_MAX_OPTION_BYTES = 64 * 1024;
export const SBM_MAX_OPTION_DISCARD_BYTES = 4 * 1024 * 1024;
/** Names and query strings (the spec's MUST). */
export const SBM_MAX_STRING_BYTES = 4096;
/** Options accepted before the client picks an export; more is treated as abuse. */
export const SBM_MAX_OPTIONS = 64;
/** Extents per BLOCK_STATUS chunk when the client did not set REQ_ONE. */
export const SBM_MAX_EXTENTS_PER_REPLY = 8192;
/**
 * Adjacent READs (or WRITEs) received together are run as one device call when each is at most
 * this big (larger requests already amortise the per-call cost)...
 */
export const SBM_COALESCE_MAX_REQUEST_BYTES = 32 * 1024;
/** ...and the merged range stays within this (the engine issues I/O up to 64 KiB synchronously). */
export const SBM_COALESCE_MAX_BYTES = 64 * 1024;
/** Requests gathered in one pass before they start, whether or not they turn out contiguous. */
export const SBM_COALESCE_MAX_BATCH_BYTES = 1024 * 1024;
/** Id of base:allocation in SET_META_CONTEXT replies (LIST replies use 0). */
export const SBM_BASE_ALLOCATION_ID = 1;
