// Checksums that on-disk structures carry, computed byte by byte from one table per polynomial.
// The structures they guard are small (sbm's 32-byte change records, 64-byte stat slots, format
// headers of a few KiB), where a call into zlib costs more in argument checks and subarrays than
// this loop does.
//
//   crc32  - IEEE 802.3 (reflected, polynomial 0xEDB88320): zlib's crc32; sbm's tracking files,
//            UDIF, VDI-adjacent tools
//   crc32c - Castagnoli (reflected, polynomial 0x82F63B78): VHDX headers, region table, metadata

import { crc32 as zlibCrc32 } from 'node:zlib';

function reflectedTable(polynomial: number): Int32Array {
  const table = new Int32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let value = byte;
    for (let bit = 0; bit < 8; bit++) value = value & 1 ? (value >>> 1) ^ polynomial : value >>> 1;
    table[byte] = value;
  }
  return table;
}

const CRC32_POLYNOMIAL = 0xedb88320;
const CRC32C_POLYNOMIAL = 0x82f63b78;
const CRC32_TABLE = reflectedTable(CRC32_POLYNOMIAL);
const CRC32C_TABLE = reflectedTable(CRC32C_POLYNOMIAL);

function reflectedCrc(table: Int32Array, buffer: Uint8Array, from: number, to: number): number {
  let crc = -1;
  for (let index = from; index < to; index++) crc = (crc >>> 8) ^ (table[(crc ^ (buffer[index] as number)) & 0xff] as number);
  return (crc ^ -1) >>> 0;
}

/**
 * CRC-32 (IEEE) of bytes [from, to) of `buffer`; equal to zlib's crc32 of that range. Its own loop
 * over its own table rather than reflectedCrc: it runs once per change record and stat slot on
 * every tracker open, so the hot loop reads one fixed table instead of one passed in.
 */
export function crc32(buffer: Uint8Array, from = 0, to = buffer.length): number {
  let crc = -1;
  for (let index = from; index < to; index++) crc = (crc >>> 8) ^ (CRC32_TABLE[(crc ^ (buffer[index] as number)) & 0xff] as number);
  return (crc ^ -1) >>> 0;
}

/** CRC-32C (Castagnoli) of bytes [from, to) of `buffer`. */
export function crc32c(buffer: Uint8Array, from = 0, to = buffer.length): number {
  return reflectedCrc(CRC32C_TABLE, buffer, from, to);
}

/**
 * CRC-32 (IEEE) continued over `data` from `value` (0 to start), by zlib: for bulk data (whole
 * decompressed chunks), where zlib's word-at-a-time loop is several times faster than the table.
 */
export function crc32Bulk(data: Uint8Array, value = 0): number {
  return zlibCrc32(data, value) >>> 0;
}

// CRC-32 over pieces computed out of order (zlib's crc32_combine): appending n zero bytes to a
// message multiplies its CRC register by a fixed 32x32 matrix over GF(2) raised to the n-th power,
// applied by repeated squaring, so the cost is log(n) matrix products whatever n is.

function gf2Times(matrix: Uint32Array, vector: number): number {
  let sum = 0;
  for (let row = 0; vector !== 0; row++, vector >>>= 1) if (vector & 1) sum ^= matrix[row] as number;
  return sum >>> 0;
}

function gf2Square(matrix: Uint32Array): Uint32Array {
  const square = new Uint32Array(32);
  for (let row = 0; row < 32; row++) square[row] = gf2Times(matrix, matrix[row] as number);
  return square;
}

/** The CRC register after `length` zero bytes have been fed to it from `register`. */
function shiftByZeros(register: number, length: number): number {
  // The operator for one zero bit, then squared to 2, 4 and 8 bits: one zero byte.
  let operator: Uint32Array = new Uint32Array(32);
  operator[0] = CRC32_POLYNOMIAL;
  for (let row = 1; row < 32; row++) operator[row] = 1 << (row - 1);
  for (let bits = 0; bits < 3; bits++) operator = gf2Square(operator);
  let value = register >>> 0;
  let remaining = length;
  while (remaining > 0) {
    if (remaining % 2 === 1) value = gf2Times(operator, value);
    remaining = Math.floor(remaining / 2);
    if (remaining > 0) operator = gf2Square(operator);
  }
  return value;
}

/** CRC-32 of A followed by B, from crc32(A), crc32(B) and B's length. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (shiftByZeros(crcA, lengthB) ^ crcB) >>> 0;
}

/** CRC-32 of `length` zero bytes, without touching them. */
export function crc32OfZeros(length: number): number {
  return ~shiftByZeros(0xffffffff, length) >>> 0;
}
