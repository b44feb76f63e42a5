// Compares the contents of two BlockDevices the way `qemu-img compare` does: byte for byte over
// the shorter size, then the longer one's extra bytes against zeros (unless strict, where any size
// difference is a difference). Ranges both devices report as unallocated or zero are not read.

import { type BlockDevice, isAllZero } from './block-device.js';

export interface CompareResult {
  readonly equal: boolean;
  /** The first byte offset whose contents differ (absent when equal or only the sizes differ under strict). */
  readonly firstDifferenceOffset?: number;
  readonly sizesDiffer: boolean;
}

const CHUNK_BYTES = 4 * 1024 * 1024;

export async function compareDevices(a: BlockDevice, b: BlockDevice, options: { strict?: boolean } = {}): Promise<CompareResult> {
  const sizesDiffer = a.sizeBytes !== b.sizeBytes;
  if (sizesDiffer && options.strict === true) return { equal: false, sizesDiffer };
  const common = Math.min(a.sizeBytes, b.sizeBytes);
  for (let offset = 0; offset < common; offset += CHUNK_BYTES) {
    const length = Math.min(CHUNK_BYTES, common - offset);
    if ((await readsAsZeros(a, offset, length)) && (await readsAsZeros(b, offset, length))) continue;
    const [left, right] = [await a.read(offset, length), await b.read(offset, length)];
    if (!left.equals(right)) return { equal: false, sizesDiffer, firstDifferenceOffset: offset + firstMismatch(left, right) };
  }
  const longer = a.sizeBytes > b.sizeBytes ? a : b;
  for (let offset = common; offset < longer.sizeBytes; offset += CHUNK_BYTES) {
    const length = Math.min(CHUNK_BYTES, longer.sizeBytes - offset);
    if (await readsAsZeros(longer, offset, length)) continue;
    const data = await longer.read(offset, length);
    if (!isAllZero(data)) return { equal: false, sizesDiffer, firstDifferenceOffset: offset + firstNonZero(data) };
  }
  return { equal: true, sizesDiffer };
}

async function readsAsZeros(device: BlockDevice, offset: number, length: number): Promise<boolean> {
  return (await device.extents(offset, length)).every((extent) => extent.kind !== 'data');
}

/** qemu-img reports the first differing 512-byte sector; sbm names the exact byte. */
function firstMismatch(left: Buffer, right: Buffer): number {
  for (let index = 0; index < left.length; index++) if (left[index] !== right[index]) return index;
  return left.length;
}

function firstNonZero(data: Buffer): number {
  for (let index = 0; index < data.length; index++) if (data[index] !== 0) return index;
  return data.length;
}
