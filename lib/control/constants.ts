// Constants of the mount control channel: a JSON-lines request/response protocol over a Unix
// socket that lets `sbm backup|token|changed-bands|snapshot` work on a bundle `sbm mount` holds.

/** Bumped when a request or reply changes incompatibly; sent in control.json. */
export const CONTROL_PROTOCOL_VERSION = 1;
/** `<bundle>/.sbm/control.json` = {version, pid, socket}: how clients find the running mount. */
export const CONTROL_FILE_NAME = 'control.json';
export const CONTROL_DIR_PREFIX = 'sbm-ctl-';
export const CONTROL_SOCKET_NAME = 'control.sock';
/** sun_path is 108 bytes on Linux, including the terminating NUL. */
export const SUN_PATH_MAX_BYTES = 107;
/**
 * A request line longer than this is refused and the connection closed. Room for a `write` of
 * MAX_IO_BYTES (1 MiB) as base64 plus its JSON.
 */
export const MAX_REQUEST_BYTES = 2 * 1024 * 1024;
/** A reply line longer than this is refused by the client (a changed-bands list of a huge disk fits). */
export const MAX_REPLY_BYTES = 256 * 1024 * 1024;
/** Concurrent control connections; requests are run one at a time anyway. */
export const MAX_CONNECTIONS = 8;
/** How long a client waits for the socket to accept before treating the mount as gone. */
export const CONNECT_TIMEOUT_MS = 5_000;
