// Checksums that on-disk structures carry, computed byte by byte from one table per polynomial.
// The structures they guard are small (sbm's 32-byte change records, 64-byte stat slots, format
// headers of a few KiB), where a call into zlib costs more in argument checks and subarrays than
// this loop does.
//
//   crc32  - IEEE 802.3 (reflected, polynomial 0xEDB88320): zlib's crc32; sbm's tracking files,
//            UDIF, VDI-adjacent tools
//   crc32c - Castagnoli (reflected, polynomial 0x82F63B78): VHDX headers, region table, metadata

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
