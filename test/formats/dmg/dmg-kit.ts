// A test-side UDIF writer, written from the format description (not from sbm's reader): the koly
// trailer, the XML plist and the mish tables are laid out here with plain Buffer writes, so a
// reader bug and a builder bug cannot cancel out. Chunks: raw, zero, ignore, zlib (Node's zlib),
// ADC (a small encoder below), bzip2 (the `bzip2` command) and LZMA (an xz container from `xz`, as hdiutil writes).

import { execFileSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';

export type ChunkKind = 'raw' | 'zero' | 'ignore' | 'zlib' | 'adc' | 'bzip2' | 'lzma' | 'lzfse';

export interface PlannedChunk {
  readonly sectors: number;
  readonly kind: ChunkKind;
}

export interface PlannedPartition {
  readonly name: string;
  readonly chunks: readonly PlannedChunk[];
}

const TYPES: Record<ChunkKind, number> = {
  zero: 0,
  raw: 1,
  ignore: 2,
  adc: 0x80000004,
  zlib: 0x80000005,
  bzip2: 0x80000006,
  lzfse: 0x80000007,
  lzma: 0x80000008,
};

/** CRC-32 (IEEE), bit by bit: independent of lib/checksums.ts. */
export function crc32Slow(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** ADC: literals, plus 3-byte and 2-byte copy codes for runs (distance 1), so both copy forms are exercised. */
export function encodeAdc(data: Uint8Array): Buffer {
  const out: number[] = [];
  const literal: number[] = [];
  const flush = (): void => {
    while (literal.length > 0) {
      const part = literal.splice(0, 128);
      out.push(0x80 | (part.length - 1), ...part);
    }
  };
  let i = 0;
  while (i < data.length) {
    let run = 1;
    while (i + run < data.length && data[i + run] === data[i] && run < 67) run++;
    if (run >= 4 && i > 0 && data[i - 1] === data[i]) {
      flush();
      if (run <= 18 && run >= 3) out.push(((run - 3) << 2) | 0, 0);
      else out.push(0x40 | (run - 4), 0, 0);
      i += run;
    } else {
      literal.push(data[i] as number);
      i++;
    }
  }
  flush();
  return Buffer.from(out);
}

function pack(kind: ChunkKind, data: Buffer): Buffer {
  switch (kind) {
    case 'raw':
      return data;
    case 'zlib':
      return deflateSync(data);
    case 'adc':
      return encodeAdc(data);
    case 'bzip2':
      return execFileSync('bzip2', ['-c'], { input: data });
    case 'lzma':
      return execFileSync('xz', ['--format=xz', '--check=none', '-c'], { input: data });
    default:
      return Buffer.alloc(0);
  }
}

function chunkRecord(type: number, sector: number, count: number, offset: number, length: number): Buffer {
  const record = Buffer.alloc(40);
  record.writeUInt32BE(type >>> 0, 0);
  record.writeBigUInt64BE(BigInt(sector), 8);
  record.writeBigUInt64BE(BigInt(count), 16);
  record.writeBigUInt64BE(BigInt(offset), 24);
  record.writeBigUInt64BE(BigInt(length), 32);
  return record;
}

function plistXml(entries: ReadonlyArray<{ name: string; data: Buffer }>): string {
  const dicts = entries.map((entry, id) => {
    const pairs: Array<[string, string]> = [
      ['Attributes', '<string>0x0050</string>'],
      ['CFName', `<string>${entry.name}</string>`],
      ['Data', `<data>\n${entry.data.toString('base64')}\n</data>`],
      ['ID', `<string>${id - 1}</string>`],
      ['Name', `<string>${entry.name}</string>`],
    ];
    return `\t\t\t<dict>\n${pairs.map(([key, value]) => `\t\t\t\t<key>${key}</key>\n\t\t\t\t${value}\n`).join('')}\t\t\t</dict>\n`;
  });
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
    '<plist version="1.0">\n<dict>\n\t<key>resource-fork</key>\n\t<dict>\n\t\t<key>blkx</key>\n\t\t<array>\n' +
    dicts.join('') +
    '\t\t</array>\n\t</dict>\n</dict>\n</plist>\n'
  );
}

/**
 * Builds a UDIF image of `disk` (whose length must be the partitions' sectors * 512, in order).
 * Zero and ignore chunks store nothing, whatever `disk` holds there.
 */
export function buildDmg(disk: Buffer, partitions: readonly PlannedPartition[]): Buffer {
  const fork: Buffer[] = [];
  let forkLength = 0;
  let sector = 0;
  const entries: Array<{ name: string; data: Buffer }> = [];
  for (const [id, partition] of partitions.entries()) {
    const first = sector;
    const records: Buffer[] = [];
    let inTable = 0;
    // hdiutil's blkx checksum: the decoded data of every chunk but ignore ones, zero fills as zeros.
    const covered: Buffer[] = [];
    for (const chunk of partition.chunks) {
      const data = disk.subarray(sector * 512, (sector + chunk.sectors) * 512);
      if (chunk.kind === 'zero') covered.push(Buffer.alloc(data.length));
      else if (chunk.kind !== 'ignore') covered.push(data);
      const packed = pack(chunk.kind, data);
      records.push(chunkRecord(TYPES[chunk.kind], inTable, chunk.sectors, forkLength, packed.length));
      fork.push(packed);
      forkLength += packed.length;
      inTable += chunk.sectors;
      sector += chunk.sectors;
    }
    records.push(chunkRecord(0x7ffffffe, inTable, 0, forkLength, 0), chunkRecord(0xffffffff, inTable, 0, forkLength, 0));
    const header = Buffer.alloc(204);
    header.write('mish', 0, 'latin1');
    header.writeUInt32BE(1, 4);
    header.writeBigUInt64BE(BigInt(first), 8);
    header.writeBigUInt64BE(BigInt(inTable), 16);
    header.writeUInt32BE(0x208, 32);
    header.writeUInt32BE(id, 36);
    header.writeUInt32BE(2, 64);
    header.writeUInt32BE(32, 68);
    header.writeUInt32BE(crc32Slow(Buffer.concat(covered)), 72);
    header.writeUInt32BE(records.length, 200);
    entries.push({ name: partition.name, data: Buffer.concat([header, ...records]) });
  }
  const data = Buffer.concat(fork);
  const xml = Buffer.from(plistXml(entries), 'utf8');
  const koly = Buffer.alloc(512);
  koly.write('koly', 0, 'latin1');
  koly.writeUInt32BE(4, 4);
  koly.writeUInt32BE(512, 8);
  koly.writeUInt32BE(1, 12);
  koly.writeBigUInt64BE(BigInt(data.length), 32);
  koly.writeUInt32BE(1, 56);
  koly.writeUInt32BE(1, 60);
  koly.writeUInt32BE(2, 80);
  koly.writeUInt32BE(32, 84);
  koly.writeUInt32BE(crc32Slow(data), 88);
  koly.writeBigUInt64BE(BigInt(data.length), 216);
  koly.writeBigUInt64BE(BigInt(xml.length), 224);
  // The master checksum: CRC-32 of the blkx checksums in plist order.
  const blkxChecksums = Buffer.concat(entries.map((entry) => entry.data.subarray(72, 76)));
  koly.writeUInt32BE(2, 352);
  koly.writeUInt32BE(32, 356);
  koly.writeUInt32BE(crc32Slow(blkxChecksums), 360);
  koly.writeUInt32BE(1, 488);
  koly.writeBigUInt64BE(BigInt(sector), 492);
  return Buffer.concat([data, xml, koly]);
}

/** A disk with text, runs (ADC copy codes) and zero stretches, `sectors` long. */
export function sampleDisk(sectors: number, seed = 1): Buffer {
  const disk = Buffer.alloc(sectors * 512);
  let state = seed;
  for (let i = 0; i < disk.length; i += 512) {
    state = (state * 1103515245 + 12345) >>> 0;
    const mode = state % 4;
    if (mode === 0) disk.fill((state >>> 8) & 0xff, i, i + 512);
    else if (mode === 1) disk.write(`sector ${i / 512} `.repeat(40), i, 512, 'latin1');
    else if (mode === 2) for (let j = 0; j < 512; j++) disk[i + j] = (state >>> (j % 24)) & 0xff;
  }
  return disk;
}
