// Samples of every image format detection knows: real images written by qemu-img at test time
// where qemu-img can create the format, and minimal images built here from the references
// (../shared/reference/*-format.md) for the others. Each sample names the label sbm must print
// and, where qemu-img can probe the format, the name qemu-img info must report for it (so a
// crafted header is checked against a real reader, not only against sbm's own table).

import { execa } from 'execa';
import { mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { qemuImgCreate, seededBytes } from '../helpers/tools.js';
import { buildDmg, sampleDisk } from './dmg/dmg-kit.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

export interface FormatSample {
  /** File (or folder) name inside the test folder. */
  readonly file: string;
  /** What `<format>` in `SBM_UNSUPPORTED: <file>: <format> images are not supported` must be. */
  readonly label: string;
  /** qemu-img info's probed format for it, when qemu-img recognises the format by content. */
  readonly qemuFormat?: string;
  /** Writes the sample at `path` (`dir` is the test's folder, for helper files). */
  make(path: string, dir: string): Promise<void>;
}

async function qemuCreate(format: string, path: string, size: string, ...extra: string[]): Promise<void> {
  await qemuImgCreate(['-q', '-f', format, ...extra, path, size]);
}

/** Writes `header` at the start of a file of `sizeBytes` seeded bytes (so the body is not zeros). */
async function headerAndData(path: string, header: Buffer, sizeBytes: number, seed: number): Promise<void> {
  const data = seededBytes(sizeBytes, seed);
  header.copy(data, 0);
  await writeFile(path, data);
}

function bochsHeader(diskBytes: number, extentBytes: number): Buffer {
  // struct bochs_header (little-endian, 512 bytes): magic[32] type[16] subtype[16] version header
  // catalog bitmap extent reserved disk(u64); qemu's bochs driver opens this "growing" layout.
  const catalogEntries = diskBytes / extentBytes;
  const header = Buffer.alloc(512);
  header.write('Bochs Virtual HD Image', 0, 'latin1');
  header.write('Redolog', 32, 'latin1');
  header.write('Growing', 48, 'latin1');
  header.writeUInt32LE(0x00020000, 64);
  header.writeUInt32LE(512, 68);
  header.writeUInt32LE(catalogEntries, 72);
  header.writeUInt32LE(512, 76);
  header.writeUInt32LE(extentBytes, 80);
  header.writeBigUInt64LE(BigInt(diskBytes), 88);
  const catalog = Buffer.alloc(catalogEntries * 4, 0xff);
  return Buffer.concat([header, catalog]);
}

function cloopImage(): Buffer {
  // cloop 2.0: a 128-byte shell preamble, then block size and block count (big-endian u32), then
  // n+1 big-endian u64 offsets of the zlib-compressed blocks.
  const preamble = Buffer.alloc(128);
  preamble.write('#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n', 0, 'latin1');
  const blockBytes = 64 * KiB;
  const block = deflateSync(seededBytes(blockBytes, 7));
  const table = Buffer.alloc(8 + 16);
  table.writeUInt32BE(blockBytes, 0);
  table.writeUInt32BE(1, 4);
  const dataStart = preamble.length + table.length;
  table.writeBigUInt64BE(BigInt(dataStart), 8);
  table.writeBigUInt64BE(BigInt(dataStart + block.length), 16);
  return Buffer.concat([preamble, table, block]);
}

function parallelsOldHeader(): Buffer {
  // The reference's verified recipe (parallels-format.md §10.2): WithoutFreeSpace, version 2,
  // heads 16, cylinders 1, tracks 63, 4 BAT entries, 252 sectors, data_off 0.
  const header = Buffer.alloc(64 + 4 * 4);
  header.write('WithoutFreeSpace', 0, 'latin1');
  header.writeUInt32LE(2, 16);
  header.writeUInt32LE(16, 20);
  header.writeUInt32LE(1, 24);
  header.writeUInt32LE(63, 28);
  header.writeUInt32LE(4, 32);
  header.writeBigUInt64LE(252n, 36);
  return header;
}

function sparseImageHeader(sizeBytes: number): Buffer {
  // .sparseimage header (big-endian): "sprs", version 3, sectors per band, flags, total sectors.
  const header = Buffer.alloc(4096);
  header.write('sprs', 0, 'latin1');
  header.writeUInt32BE(3, 4);
  header.writeUInt32BE(2048, 8);
  header.writeUInt32BE(1, 12);
  header.writeUInt32BE(sizeBytes / 512, 16);
  header.writeBigUInt64BE(BigInt(sizeBytes / 512), 28);
  return header;
}

function asifHeader(sizeBytes: number): Buffer {
  // ASIF (huven/asif-format): "shdw", version 1, header size 512, flags, directory offsets,
  // uuid, sector count, max sector count, chunk size, sector size; big-endian.
  const header = Buffer.alloc(512);
  header.write('shdw', 0, 'latin1');
  header.writeUInt32BE(1, 4);
  header.writeUInt32BE(512, 8);
  header.writeBigUInt64BE(0x200n, 0x10);
  header.writeBigUInt64BE(0x400n, 0x18);
  seededBytes(16, 9).copy(header, 0x20);
  header.writeBigUInt64BE(BigInt(sizeBytes / 512), 0x30);
  header.writeBigUInt64BE(BigInt(sizeBytes / 512), 0x38);
  header.writeUInt32BE(MiB, 0x40);
  header.writeUInt16BE(512, 0x44);
  return header;
}

function seSparseHeader(): Buffer {
  // ESXi seSparse constant header: u64 magic 0xcafebabe, u64 version 0x0000000200000001,
  // capacity and grain size (little-endian).
  const header = Buffer.alloc(512);
  header.writeBigUInt64LE(0xcafebaben, 0);
  header.writeBigUInt64LE(0x0000000200000001n, 8);
  header.writeBigUInt64LE(2048n, 16);
  header.writeBigUInt64LE(8n, 24);
  return header;
}

const OVF_TEXT =
  '<?xml version="1.0"?>\n<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">' +
  '<References><File ovf:id="f1" ovf:href="disk1.vmdk"/></References><DiskSection><Info>disks</Info>' +
  '<Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="1048576"/></DiskSection></Envelope>\n';

/**
 * An OVA (one empty 1 MiB streamOptimized disk) made by GNU tar in `tarFormat`, the .ovf first
 * (and `ovfName` may need the long-name headers).
 */
async function makeOva(path: string, dir: string, tarFormat: string, ovfName = 'appliance.ovf'): Promise<void> {
  const staging = join(dir, `ova-${tarFormat}`);
  await mkdir(staging);
  await writeFile(join(staging, ovfName), OVF_TEXT);
  await execa('qemu-img', ['create', '-q', '-f', 'vmdk', '-o', 'subformat=streamOptimized', join(staging, 'disk1.vmdk'), '1M']);
  await execa('tar', [`--format=${tarFormat}`, '-cf', path, '-C', staging, ovfName, 'disk1.vmdk']);
  await execa('rm', ['-r', staging]);
}

const LONG_OVF_NAME = `${'a-very-long-appliance-name-'.repeat(5)}.ovf`;

export const SAMPLES: readonly FormatSample[] = [
  {
    file: 'v3.qcow2',
    label: 'qcow2 (version 3, compat=1.1)',
    qemuFormat: 'qcow2',
    make: (path) => qemuCreate('qcow2', path, '16M', '-o', 'compat=1.1'),
  },
  {
    file: 'v2.qcow2',
    label: 'qcow2 (version 2, compat=0.10)',
    qemuFormat: 'qcow2',
    make: (path) => qemuCreate('qcow2', path, '16M', '-o', 'compat=0.10'),
  },
  { file: 'old.qcow', label: 'qcow (version 1)', qemuFormat: 'qcow', make: (path) => qemuCreate('qcow', path, '16M') },
  { file: 'dynamic.vhd', label: 'VHD', qemuFormat: 'vpc', make: (path) => qemuCreate('vpc', path, '16M', '-o', 'subformat=dynamic') },
  // No qemuFormat: qemu-img probes only the start of a file and takes a fixed VHD (footer at the end only) for raw.
  { file: 'fixed.vhd', label: 'VHD', make: (path) => qemuCreate('vpc', path, '4M', '-o', 'subformat=fixed') },
  {
    // Old Virtual PC wrote a 511-byte footer on fixed disks: a qemu fixed VHD less its last (reserved, zero) byte.
    file: 'virtualpc.vhd',
    label: 'VHD (Virtual PC 511-byte footer)',
    make: async (path) => {
      await qemuCreate('vpc', path, '4M', '-o', 'subformat=fixed');
      const bytes = await readFile(path);
      await truncate(path, bytes.length - 1);
    },
  },
  { file: 'disk.vhdx', label: 'VHDX', qemuFormat: 'vhdx', make: (path) => qemuCreate('vhdx', path, '16M') },
  { file: 'disk.vdi', label: 'VDI', qemuFormat: 'vdi', make: (path) => qemuCreate('vdi', path, '16M') },
  { file: 'disk.qed', label: 'QED', qemuFormat: 'qed', make: (path) => qemuCreate('qed', path, '16M') },
  {
    file: 'disk.luks',
    label: 'LUKS1',
    qemuFormat: 'luks',
    make: (path) =>
      qemuCreate('luks', path, '4M', '--object', 'secret,id=sec0,data=not-a-real-secret', '-o', 'key-secret=sec0,iter-time=10'),
  },
  { file: 'new.hds', label: 'Parallels', qemuFormat: 'parallels', make: (path) => qemuCreate('parallels', path, '16M') },
  { file: 'old.hdd', label: 'Parallels', qemuFormat: 'parallels', make: (path) => writeFile(path, parallelsOldHeader()) },
  { file: 'disk.bochs', label: 'Bochs', qemuFormat: 'bochs', make: (path) => writeFile(path, bochsHeader(MiB, 64 * KiB)) },
  { file: 'disk.cloop', label: 'cloop', qemuFormat: 'cloop', make: (path) => writeFile(path, cloopImage()) },
  {
    file: 'installer.dmg',
    label: 'UDIF (.dmg)',
    make: (path) => writeFile(path, buildDmg(sampleDisk(512, 21), [{ name: 'disk image', chunks: [{ sectors: 512, kind: 'zlib' }] }])),
  },
  {
    file: 'home.sparseimage',
    label: 'Apple sparse image (.sparseimage)',
    make: (path) => headerAndData(path, sparseImageHeader(8 * MiB), 64 * KiB, 22),
  },
  { file: 'disk.asif', label: 'ASIF (Apple sparse image format)', make: (path) => headerAndData(path, asifHeader(8 * MiB), 64 * KiB, 23) },
  {
    file: 'secret.dmg',
    label: 'encrypted Apple disk image (encrcdsa)',
    make: (path) => headerAndData(path, Buffer.from('encrcdsa\0\0\0\x02', 'latin1'), 128 * KiB, 24),
  },
  {
    file: 'filevault.sparseimage',
    label: 'encrypted Apple disk image (cdsaencr)',
    make: (path) => writeFile(path, Buffer.concat([seededBytes(64 * KiB, 25), Buffer.from('cdsaencr', 'latin1')])),
  },
  { file: 'disk-sesparse.vmdk', label: 'VMware seSparse', make: (path) => headerAndData(path, seSparseHeader(), 64 * KiB, 26) },
  { file: 'ustar.ova', label: 'OVA', make: (path, dir) => makeOva(path, dir, 'ustar') },
  { file: 'gnu.ova', label: 'OVA', make: (path, dir) => makeOva(path, dir, 'gnu', LONG_OVF_NAME) },
  { file: 'pax.ova', label: 'OVA', make: (path, dir) => makeOva(path, dir, 'posix', LONG_OVF_NAME) },
];
