// Test kit for VHD: qemu-img/qemu-io wrappers, footer and header patching (checksums fixed after
// a change, from the reader's own layout declarations), and the builder of a differencing VHD.
//
// qemu-img cannot create a differencing VHD (and reads one as a dynamic disk without parent), so
// one is made from a qemu dynamic VHD: both footers get type 4, the dynamic header gets the
// parent's unique id, its unicode name and W2ru/W2ku locators (data in a sector appended
// after the last block, then the footer rewritten after it), all checksums recomputed. qemu-img
// info and convert still accept the result, which shows its structures are well formed.

import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { PLATFORM_CODE_W2KU, PLATFORM_CODE_W2RU, VHD_DISK_TYPE_DIFFERENCING } from '../../../formats/vhd/constants.js';
import { VHD_DYNAMIC_HEADER, VHD_FOOTER, VHD_PARENT_LOCATOR, vhdChecksum } from '../../../formats/vhd/layouts.js';

export const MiB = 1024 * 1024;
export const HEADER_AT = 512;

export async function qemuImg(args: string[]): Promise<string> {
  return (await execa('qemu-img', args)).stdout;
}

/** Makes a VHD with qemu-img and writes into it with qemu-io (`-c` commands). */
export async function qemuVhd(path: string, size: string, options: string[], commands: string[] = []): Promise<void> {
  await qemuImg(['create', '-q', '-f', 'vpc', ...(options.length > 0 ? ['-o', options.join(',')] : []), path, size]);
  if (commands.length > 0) await execa('qemu-io', ['-f', 'vpc', ...commands.flatMap((command) => ['-c', command]), path]);
}

export async function qemuVirtualSize(path: string): Promise<number> {
  return (JSON.parse(await qemuImg(['info', '-f', 'vpc', '--output=json', path])) as { 'virtual-size': number })['virtual-size'];
}

export async function qemuRaw(path: string, out: string): Promise<Buffer> {
  await qemuImg(['convert', '-f', 'vpc', '-O', 'raw', path, out]);
  return readFile(out);
}

export function fixFooterChecksum(file: Buffer, at: number): void {
  const footer = file.subarray(at, at + VHD_FOOTER.sizeBytes);
  footer.writeUInt32BE(vhdChecksum(footer, VHD_FOOTER.offsetOf('checksum')), VHD_FOOTER.offsetOf('checksum'));
}

export function fixHeaderChecksum(file: Buffer): void {
  const header = file.subarray(HEADER_AT, HEADER_AT + VHD_DYNAMIC_HEADER.sizeBytes);
  header.writeUInt32BE(vhdChecksum(header, VHD_DYNAMIC_HEADER.offsetOf('checksum')), VHD_DYNAMIC_HEADER.offsetOf('checksum'));
}

/** Applies `edit` to both footers of a dynamic VHD (the copy at 0 and the one at the end), checksums fixed. */
export function editFooters(file: Buffer, edit: (footer: Buffer) => void): void {
  for (const at of [0, file.length - 512]) {
    edit(file.subarray(at, at + 512));
    fixFooterChecksum(file, at);
  }
}

export interface ParentNaming {
  readonly w2ru?: string;
  readonly w2ku?: string;
  readonly unicodeName?: string;
  /** Defaults to the parent's own unique id. */
  readonly parentId?: Buffer;
}

/** Turns the dynamic VHD `child` into a differencing disk over `parentPath`. */
export async function makeDifferencing(childPath: string, parentPath: string, naming: ParentNaming): Promise<void> {
  const parent = await readFile(parentPath);
  const parentId = naming.parentId ?? VHD_FOOTER.decode(parent, 0).uniqueId;
  const original = await readFile(childPath);
  const footer = Buffer.from(original.subarray(original.length - 512));
  const body = original.subarray(0, original.length - 512);
  const entries: Array<{ code: number; data: Buffer }> = [];
  if (naming.w2ru !== undefined) entries.push({ code: PLATFORM_CODE_W2RU, data: Buffer.from(naming.w2ru, 'utf16le') });
  if (naming.w2ku !== undefined) entries.push({ code: PLATFORM_CODE_W2KU, data: Buffer.from(naming.w2ku, 'utf16le') });
  const file = Buffer.concat([body, Buffer.alloc(entries.length * 512), footer]);
  entries.forEach((entry, index) => {
    const at = body.length + index * 512;
    entry.data.copy(file, at);
    VHD_PARENT_LOCATOR.encode(
      {
        platformCode: entry.code,
        platformDataSpace: 1,
        platformDataLength: entry.data.length,
        reserved: 0,
        platformDataOffset: BigInt(at),
      },
      file,
      HEADER_AT + VHD_DYNAMIC_HEADER.offsetOf('parentLocators') + index * VHD_PARENT_LOCATOR.sizeBytes,
    );
  });
  parentId.copy(file, HEADER_AT + VHD_DYNAMIC_HEADER.offsetOf('parentUniqueId'));
  const nameField = file.subarray(
    HEADER_AT + VHD_DYNAMIC_HEADER.offsetOf('parentUnicodeName'),
    HEADER_AT + VHD_DYNAMIC_HEADER.offsetOf('parentUnicodeName') + 512,
  );
  nameField.fill(0);
  if (naming.unicodeName !== undefined) Buffer.from(naming.unicodeName, 'utf16le').swap16().copy(nameField);
  fixHeaderChecksum(file);
  editFooters(file, (copy) => copy.writeUInt32BE(VHD_DISK_TYPE_DIFFERENCING, VHD_FOOTER.offsetOf('diskType')));
  await writeFile(childPath, file);
}

/** File offset of block `block`'s sector bitmap (from the BAT). */
export function blockStart(file: Buffer, block: number): number {
  const header = VHD_DYNAMIC_HEADER.decode(file, HEADER_AT);
  return file.readUInt32BE(Number(header.tableOffset) + block * 4) * 512;
}
