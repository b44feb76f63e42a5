// Whether WRITE_ZEROES can honour NBD_CMD_FLAG_FAST_ZERO: "fast" means zeroing without writing
// data. On a sparse bundle, a band the range covers whole is deleted (fast), and a band with no
// data in the range needs nothing (fast); a partial band holding data must be overwritten with
// real zeros (Node has no punch-hole), which is slow, so the answer is ENOTSUP. Devices without
// bands are fast only where the range holds no data at all.

import type { BlockDevice } from '../block-device.js';

function bandSizeOf(device: BlockDevice): number | undefined {
  const value = (device as { bandSizeBytes?: unknown }).bandSizeBytes;
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

export async function canZeroFast(device: BlockDevice, offset: number, length: number): Promise<boolean> {
  const bandSize = bandSizeOf(device);
  const end = offset + length;
  for (const extent of await device.extents(offset, length)) {
    if (extent.kind !== 'data') continue;
    if (bandSize === undefined) return false;
    // Every band this data run touches must be covered whole by the request (or up to the disk end).
    const firstBand = Math.floor(extent.offset / bandSize);
    const lastBand = Math.floor((extent.offset + extent.length - 1) / bandSize);
    for (const band of [firstBand, lastBand]) {
      const bandStart = band * bandSize;
      const bandEnd = Math.min(bandStart + bandSize, device.sizeBytes);
      if (bandStart < offset || bandEnd > end) return false;
    }
  }
  return true;
}
