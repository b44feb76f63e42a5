// The SyncTarget of a bundle a running `sbm mount` holds: every read, write, zero, flush and
// grow is a control request the mount runs through its own engine, so its tracker records the
// writes and copy-on-write protects its snapshots, while its NBD clients keep working. The
// mount's clients may write during the sync, so the record is tied to the token taken before
// the sync wrote anything (sharedWriters).

import { isRefusedToken, type SyncTarget } from '../sync/sync-target.js';
import type { BundleOperations } from './bundle-operations.js';
import { MAX_IO_BYTES } from './control-protocol.js';

export async function remoteSyncTarget(operations: BundleOperations): Promise<SyncTarget> {
  let { sizeBytes, bandSizeBytes } = await operations.geometry();
  return {
    path: operations.path,
    get sizeBytes() {
      return sizeBytes;
    },
    bandSizeBytes,
    sharedWriters: true,
    readInto: async (offset, target) => {
      for (let at = 0; at < target.length; at += MAX_IO_BYTES) {
        const length = Math.min(MAX_IO_BYTES, target.length - at);
        target.set(await operations.read(offset + at, length), at);
      }
    },
    write: async (offset, data) => {
      for (let at = 0; at < data.length; at += MAX_IO_BYTES)
        await operations.write(offset + at, data.subarray(at, Math.min(data.length, at + MAX_IO_BYTES)));
    },
    zero: (offset, length) => operations.zero(offset, length),
    flush: () => operations.flush(),
    token: () => operations.token(),
    changesSince: async (token) => {
      try {
        const { report } = await operations.changedBandsSince(token);
        return { bands: new Set(report.bands.map((band) => band.bandIndex)), token: report.token ?? (await operations.token()) };
      } catch (error) {
        if (isRefusedToken(error)) return undefined;
        throw error;
      }
    },
    grow: async (newSizeBytes) => {
      await operations.grow(newSizeBytes);
      ({ sizeBytes, bandSizeBytes } = await operations.geometry());
    },
  };
}
