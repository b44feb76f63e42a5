// What the server knows about the one export it serves, and the transmission flags that follow
// from it. Flags depend on whether structured replies were negotiated (SEND_DF needs them).

import * as C from './constants.js';

export interface NbdExport {
  /** Export name; the empty name (the client's default) always selects it too. */
  readonly name: string;
  readonly description?: string;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** Advertise CAN_MULTI_CONN: a flush on one connection covers writes made on all of them. */
  readonly multiConn: boolean;
}

export function transmissionFlags(target: NbdExport, structuredReplies: boolean): number {
  let flags = C.NBD_FLAG_HAS_FLAGS | C.NBD_FLAG_SEND_FLUSH | C.NBD_FLAG_SEND_CACHE;
  if (target.multiConn) flags |= C.NBD_FLAG_CAN_MULTI_CONN;
  if (structuredReplies) flags |= C.NBD_FLAG_SEND_DF;
  if (target.readOnly) {
    flags |= C.NBD_FLAG_READ_ONLY;
  } else {
    // FAST_ZERO is advertised because sbm answers it honestly: ENOTSUP whenever zeroing would
    // have to write data (see fast-zero.ts), which is the flag's whole purpose.
    flags |= C.NBD_FLAG_SEND_FUA | C.NBD_FLAG_SEND_TRIM | C.NBD_FLAG_SEND_WRITE_ZEROES | C.NBD_FLAG_SEND_FAST_ZERO;
  }
  return flags;
}

export function exportMatches(target: NbdExport, name: string): boolean {
  return name === '' || name === target.name;
}
