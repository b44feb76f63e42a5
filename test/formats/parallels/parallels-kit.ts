// Test kit for Parallels disks: expanding images written by qemu-img/qemu-io (the oracle for
// single .hds files), old-magic images built by hand from the reference's verified recipe, and
// DiskDescriptor.xml folders built from ../shared/reference/parallels-format.md §3 (qemu reads no
// descriptor, so chains are checked against qemu-img reading the top .hds with an explicit
// backing chain, and split disks against the concatenation of qemu-img's reads of each piece).

import { execa } from 'execa';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const TOP = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';
export const ZERO = '{00000000-0000-0000-0000-000000000000}';

/** An expanding image by qemu-img, then qemu-io commands (e.g. `write -P 0x11 0 64k`). */
export async function qemuHds(path: string, size: string, commands: string[] = [], clusterSize = '64k'): Promise<void> {
  await execa('qemu-img', ['create', '-q', '-f', 'parallels', '-o', `cluster_size=${clusterSize}`, path, size]);
  if (commands.length > 0) await execa('qemu-io', ['-f', 'parallels', ...commands.flatMap((command) => ['-c', command]), path]);
}

/** What qemu-img reads from `spec` (a file, or a json: chain), as raw bytes. */
export async function qemuRead(spec: string, out: string, format?: string): Promise<Buffer> {
  await execa('qemu-img', ['convert', ...(format === undefined ? [] : ['-f', format]), '-O', 'raw', spec, out]);
  return readFile(out);
}

/** A json: spec reading `top` over `base` (qemu's only way to read a Parallels chain). */
export function chainSpec(top: string, base: string): string {
  const file = (filename: string) => ({ driver: 'file', filename });
  return `json:${JSON.stringify({ driver: 'parallels', file: file(top), backing: { driver: 'parallels', file: file(base) } })}`;
}

export interface ImageSpec {
  readonly guid: string;
  readonly file: string;
  readonly type?: 'Compressed' | 'Plain';
}

export interface StorageSpec {
  readonly start: number;
  readonly end: number;
  readonly blocksize?: number;
  readonly images: readonly ImageSpec[];
}

export interface DescriptorSpec {
  readonly diskSectors: number;
  readonly storages: readonly StorageSpec[];
  /** [GUID, parent GUID], in any order. */
  readonly shots: ReadonlyArray<readonly [string, string]>;
  readonly topGuid?: string;
  readonly encryption?: string;
  readonly extraParameters?: string;
}

/** DiskDescriptor.xml text in the shape of the reference's example (§3.1). */
export function descriptorXml(spec: DescriptorSpec): string {
  const storages = spec.storages
    .map((storage) => {
      const images = storage.images
        .map(
          (image) =>
            `            <Image>\n                <GUID>${image.guid}</GUID>\n` +
            `                <Type>${image.type ?? 'Compressed'}</Type>\n` +
            `                <File>${image.file}</File>\n            </Image>\n`,
        )
        .join('');
      return (
        `        <Storage>\n            <Start>${storage.start}</Start>\n            <End>${storage.end}</End>\n` +
        `            <Blocksize>${storage.blocksize ?? 128}</Blocksize>\n${images}        </Storage>\n`
      );
    })
    .join('');
  const shots = spec.shots
    .map(
      ([guid, parent]) =>
        `        <Shot>\n            <GUID>${guid}</GUID>\n            <ParentGUID>${parent}</ParentGUID>\n        </Shot>\n`,
    )
    .join('');
  const top = spec.topGuid === undefined ? '' : `        <TopGUID>${spec.topGuid}</TopGUID>\n`;
  return `<?xml version='1.0' encoding='UTF-8'?>
<Parallels_disk_image Version="1.0">
    <Disk_Parameters>
        <Disk_size>${spec.diskSectors}</Disk_size>
        <Cylinders>${Math.floor(spec.diskSectors / 512)}</Cylinders>
        <PhysicalSectorSize>4096</PhysicalSectorSize>
        <LogicSectorSize>512</LogicSectorSize>
        <Heads>16</Heads>
        <Sectors>32</Sectors>
        <Padding>0</Padding>
        <Encryption>
            <Engine>${spec.encryption ?? ZERO}</Engine>
            <Data></Data>
        </Encryption>
        <UID>{2b1c4e6a-0d1f-4e0b-9a51-3f7c2d8e9a10}</UID>
        <Name>harddisk</Name>
        <Miscellaneous>
            <CompatLevel>level2</CompatLevel>
            <Bootable>1</Bootable>
            <ChangeState>0</ChangeState>
            <SuspendState>0</SuspendState>
        </Miscellaneous>${spec.extraParameters ?? ''}
    </Disk_Parameters>
    <StorageData>
${storages}    </StorageData>
    <Snapshots>
${top}${shots}    </Snapshots>
</Parallels_disk_image>
`;
}

export async function writeDescriptor(folder: string, spec: DescriptorSpec | string): Promise<void> {
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'DiskDescriptor.xml'), typeof spec === 'string' ? spec : descriptorXml(spec));
}

/**
 * The reference's verified old-magic recipe (§10.2): WithoutFreeSpace, tracks 63 (32256-byte
 * clusters), 4 clusters, data_off 0, BAT [64, 0, 1, 0] in sectors; cluster 2 holds 0x22 at sector
 * 1 and cluster 0 holds 0x11 at sector 64.
 */
export function oldMagicImage(): Buffer {
  const clusterBytes = 63 * 512;
  const file = Buffer.alloc((64 + 63) * 512);
  file.write('WithoutFreeSpace', 0, 'latin1');
  file.writeUInt32LE(2, 16);
  file.writeUInt32LE(16, 20);
  file.writeUInt32LE(1, 24);
  file.writeUInt32LE(63, 28);
  file.writeUInt32LE(4, 32);
  file.writeBigUInt64LE(252n, 36);
  for (const [index, entry] of [64, 0, 1, 0].entries()) file.writeUInt32LE(entry, 64 + index * 4);
  file.fill(0x22, 512, 512 + clusterBytes);
  file.fill(0x11, 64 * 512, 64 * 512 + clusterBytes);
  return file;
}
