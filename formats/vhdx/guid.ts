// GUIDs as VHDX stores them: Microsoft's mixed-endian binary form (data1 u32 LE, data2 u16 LE,
// data3 u16 LE, then 8 bytes as written), so BAT_GUID 2DC27766-F623-... is 66 77 C2 2D 23 F6 ...

import { SbmError } from '../../lib/errors.js';

const GUID_TEXT = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

/** The 16 on-disk bytes of a GUID written as text (braces optional). */
export function guidToBytes(text: string): Buffer {
  const parts = GUID_TEXT.exec(text.trim());
  if (parts === null) throw new SbmError('SBM_INVALID_ARGUMENT', `not a GUID: ${JSON.stringify(text)}`);
  const out = Buffer.alloc(16);
  out.writeUInt32LE(Number.parseInt(parts[1] ?? '', 16), 0);
  out.writeUInt16LE(Number.parseInt(parts[2] ?? '', 16), 4);
  out.writeUInt16LE(Number.parseInt(parts[3] ?? '', 16), 6);
  Buffer.from(`${parts[4] ?? ''}${parts[5] ?? ''}`, 'hex').copy(out, 8);
  return out;
}

/** Parses GUID text, or undefined when it is not one (a parent locator value is input). */
export function parseGuid(text: string): Buffer | undefined {
  return GUID_TEXT.test(text.trim()) ? guidToBytes(text) : undefined;
}

/** Upper-case registry text of 16 on-disk bytes. */
export function guidToText(bytes: Uint8Array): string {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, 16);
  const hex = (value: number, digits: number): string => value.toString(16).padStart(digits, '0');
  const tail = view.subarray(8, 16).toString('hex');
  const head = `${hex(view.readUInt32LE(0), 8)}-${hex(view.readUInt16LE(4), 4)}-${hex(view.readUInt16LE(6), 4)}`;
  return `${head}-${tail.slice(0, 4)}-${tail.slice(4)}`.toUpperCase();
}

export function isZeroGuid(bytes: Uint8Array): boolean {
  return bytes.every((byte) => byte === 0);
}
