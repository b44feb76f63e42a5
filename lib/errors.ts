// The one error class of sbm. Every failure a user can meet carries a stable `code` (listed in
// ERROR_CODES and in the README), structured `data`, and a message that starts with the code, so
// scripts can match on either the exit status or the first word of stderr.

export interface ErrorCodeInfo {
  /** Process exit status the CLI uses for this code. */
  readonly exitCode: number;
  /** One line for the README's error table. */
  readonly summary: string;
}

/**
 * Exit statuses: 1 = operation failed, 2 = bad usage/arguments, 3 = bundle busy,
 * 4 = input damaged or unsupported, 5 = problems found by `check`/`verify`,
 * 10 = the token cannot be honoured: a full backup is required.
 */
export const ERROR_CODES = {
  SBM_USAGE: { exitCode: 2, summary: 'bad command-line arguments or option values' },
  SBM_INVALID_ARGUMENT: { exitCode: 2, summary: 'a library call got an argument outside its contract' },
  SBM_OUT_OF_RANGE: { exitCode: 2, summary: 'offset or length outside the disk' },
  SBM_OUTPUT_INSIDE_INPUT: {
    exitCode: 2,
    summary: 'the output path is an input, lies inside one, or (when replaced) holds one, symlinks resolved; --force does not override',
  },
  SBM_READ_ONLY: { exitCode: 1, summary: 'write, trim or resize on a device opened read-only' },
  SBM_BACKUP_READ_ONLY: {
    exitCode: 1,
    summary: 'a command would change a backup (or write inside one): resize, snapshot, compact, restore or an output onto it',
  },
  SBM_CLOSED: { exitCode: 1, summary: 'operation on a device that was already closed' },
  SBM_EXISTS: { exitCode: 1, summary: 'output already exists (use --force to replace it)' },
  SBM_NOT_FOUND: { exitCode: 1, summary: 'input file or bundle does not exist' },
  SBM_LOCKED: {
    exitCode: 3,
    summary: "bundle is in use by another process (flock on `lock`), or `sbm sync`'s source disk is open for writing by its hypervisor",
  },
  SBM_NOT_A_BUNDLE: { exitCode: 4, summary: 'path is not a sparse bundle (no Info.plist/Info.bckup, token or bands/)' },
  SBM_BAD_PLIST: { exitCode: 4, summary: 'Info.plist and Info.bckup are both unreadable or invalid' },
  SBM_BAD_BAND_SIZE: { exitCode: 4, summary: 'band size is not a multiple of 4096 between 1 MiB and 8 GiB' },
  SBM_BAD_SIZE: { exitCode: 4, summary: 'disk size is zero, not a multiple of 512 (4096 on create) or too large' },
  SBM_ENCRYPTED: {
    exitCode: 4,
    summary: 'bundle is encrypted and no password was given (--stdinpass or a terminal prompt), or its token is of an unknown kind',
  },
  SBM_BAD_PASSWORD: { exitCode: 1, summary: "the password does not unlock the encrypted bundle's key; nothing was read or written" },
  SBM_UNKNOWN_FORMAT: { exitCode: 4, summary: 'input format not recognised from its content' },
  SBM_UNSUPPORTED: { exitCode: 4, summary: 'recognised format or feature that sbm does not support' },
  SBM_CORRUPT: { exitCode: 4, summary: 'input is damaged (bad structure, truncated, pointers out of range)' },
  SBM_NOT_REGULAR_FILE: {
    exitCode: 4,
    summary: 'a file inside a bundle is a symlink, FIFO, device or folder where a regular file belongs',
  },
  SBM_BAD_BAND: {
    exitCode: 4,
    summary: 'a band file (or bands/ itself) is a symlink, FIFO, device or folder: damage sbm never reads or writes through',
  },
  SBM_MANIFEST_MISMATCH: {
    exitCode: 4,
    summary: "a file of an OVA/OVF package does not match the package's manifest digest (damaged or altered); nothing is read from it",
  },
  SBM_PATH_OUTSIDE: { exitCode: 4, summary: 'a descriptor names a file outside its own folder (allow with --allow-outside)' },
  SBM_CHECK_FAILED: { exitCode: 5, summary: '`sbm check` found problems in the bundle' },
  SBM_VERIFY_FAILED: { exitCode: 5, summary: '`sbm verify` found bands that do not match their backup manifest' },
  SBM_NOT_A_BACKUP: { exitCode: 4, summary: 'path is not an sbm backup (no .sbm/manifest.json) or backup set' },
  SBM_NO_HARDLINKS: { exitCode: 1, summary: 'the backup destination cannot hard-link files (use --copy)' },
  SBM_NO_SPACE: {
    exitCode: 1,
    summary: "the filesystem ran out of space (a destination, or the bundle's own for change tracking); the partial output was removed",
  },
  SBM_STRICT: { exitCode: 4, summary: 'a warning was raised and --strict turns warnings into errors' },
  SBM_IO: { exitCode: 1, summary: 'an operating-system I/O call failed' },
  SBM_LISTEN: { exitCode: 1, summary: 'the NBD server cannot listen on the socket or port (in use, or no permission)' },
  SBM_INTERRUPTED: { exitCode: 130, summary: 'interrupted by a signal; partial output was removed' },
  SBM_INTERNAL: { exitCode: 70, summary: 'a bug in sbm (please report it with DEBUG=sbm:* output)' },
  SBM_BAD_TOKEN: { exitCode: 2, summary: 'text given as a change-tracking token is not one (sbm1:<uuid>:<epoch>:<generation>)' },
  SBM_TOKEN_FOREIGN: { exitCode: 10, summary: 'token belongs to another bundle (or this one has no change history): full backup required' },
  SBM_TOKEN_STALE: {
    exitCode: 10,
    summary: 'token predates a change-tracking reset (bundle copied/restored, tracking files lost): full backup required',
  },
  SBM_SIZE_MISMATCH: {
    exitCode: 1,
    summary: "`sbm sync`: the bundle does not have the source disk's size (--resize grows it; it is never shrunk)",
  },
  SBM_CONTROL: { exitCode: 1, summary: 'the control channel of a running `sbm mount` failed (bad request or reply, connection lost)' },
  SBM_S3_CREDENTIALS: {
    exitCode: 1,
    summary: 'the S3 server refused the credentials (wrong access key or secret, clock skew, none found)',
  },
  SBM_S3_NO_BUCKET: { exitCode: 1, summary: 'the S3 bucket does not exist' },
  SBM_S3_DENIED: { exitCode: 1, summary: 'the S3 server denied the request: the credentials lack permission' },
  SBM_S3_UNREACHABLE: { exitCode: 1, summary: 'the S3 endpoint cannot be reached (connection refused, DNS, timeout) after retries' },
  SBM_S3_FAILED: { exitCode: 1, summary: 'the S3 server failed a request after retries (5xx, full, throttled)' },
  SBM_TOKEN_FUTURE: {
    exitCode: 10,
    summary: 'token is newer than the bundle (restored from an older copy, or edited): full backup required',
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type SbmErrorCode = keyof typeof ERROR_CODES;

export class SbmError extends Error {
  readonly code: SbmErrorCode;
  readonly data: Readonly<Record<string, unknown>>;

  constructor(code: SbmErrorCode, detail: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(`${code}: ${oneLine(detail)}`, options);
    this.name = 'SbmError';
    this.code = code;
    this.data = data;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exitCode;
  }
}

/**
 * Control characters (a newline in a file name, a tar member or a descriptor read from hostile
 * input) shown as \xNN escapes, so every error stays the one line the CLI promises.
 */
function oneLine(detail: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  return detail.replace(/[\x00-\x1f\x7f]/g, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function isSbmError(error: unknown, code?: SbmErrorCode): error is SbmError {
  return error instanceof SbmError && (code === undefined || error.code === code);
}

/** Turns a Node system error (ENOENT, EIO, ...) into an SbmError naming what sbm was doing. */
export function fromSystemError(error: unknown, doing: string, path?: string): SbmError {
  if (error instanceof SbmError) return error;
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = path === undefined ? '' : ` ${path}`;
  const reason = error instanceof Error ? error.message : String(error);
  if (errno === 'ENOENT')
    return new SbmError('SBM_NOT_FOUND', `${doing}${where}: no such file or directory`, { path, errno }, { cause: error });
  return new SbmError('SBM_IO', `${doing}${where}: ${reason}`, { path, errno }, { cause: error });
}
