// Test kit for VDI: qemu-img/qemu-io wrappers, header field patching (VDI headers carry no
// checksum), and the builder of differencing images.
//
// qemu cannot create (nor open) a VDI diff, so one is built from a qemu image's header, as the
// format reference (section 10.3) describes: copy the header and map area, set type 4, give the
// child fresh uuidCreate/uuidModify, uuidLinkage = the parent's uuidCreate and uuidParentModify =
// the parent's uuidModify, every map entry 0xFFFFFFFF (free), then append the child's own blocks.

import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { VDI_IMAGE_BLOCK_FREE, VDI_IMAGE_TYPE_DIFF, VDI_PRE_HEADER_SIZE } from '../../../formats/vdi/constants.js';
import { VDI_HEADER_V1 } from '../../../formats/vdi/layouts.js';

export const MiB = 1024 * 1024;

type HeaderField = Parameters<typeof VDI_HEADER_V1.offsetOf>[0];

/** Absolute file offset of a v1.1 header field. */
export const at = (name: HeaderField): number => VDI_PRE_HEADER_SIZE + VDI_HEADER_V1.offsetOf(name);

export async function qemuImg(args: string[]): Promise<string> {
  return (await execa('qemu-img', args)).stdout;
}

export async function qemuVdi(path: string, size: string, options: string[], commands: string[] = []): Promise<void> {
  await qemuImg(['create', '-q', '-f', 'vdi', ...(options.length > 0 ? ['-o', options.join(',')] : []), path, size]);
  if (commands.length > 0) await execa('qemu-io', ['-f', 'vdi', ...commands.flatMap((command) => ['-c', command]), path]);
}

export async function qemuRaw(path: string, out: string): Promise<Buffer> {
  await qemuImg(['convert', '-f', 'vdi', '-O', 'raw', path, out]);
  return readFile(out);
}

export function header(file: Buffer): ReturnType<typeof VDI_HEADER_V1.decode> {
  return VDI_HEADER_V1.decode(file, VDI_PRE_HEADER_SIZE);
}

export interface DiffSpec {
  /** Block index -> its content (cbBlock bytes) or 'zero' (entry 0xFFFFFFFE). */
  readonly blocks: ReadonlyMap<number, Buffer | 'zero'>;
  /** Defaults to the parent's uuidModify. */
  readonly parentModify?: Buffer;
  readonly uuidCreate?: Buffer;
}

/** Writes a differencing VDI over the VDI at `parentPath`; returns the child's uuidCreate. */
export async function makeDiff(childPath: string, parentPath: string, spec: DiffSpec): Promise<Buffer> {
  const parent = await readFile(parentPath);
  const base = header(parent);
  const head = Buffer.from(parent.subarray(0, base.offData));
  const uuidCreate = spec.uuidCreate ?? randomBytes(16);
  head.writeUInt32LE(VDI_IMAGE_TYPE_DIFF, at('imageType'));
  uuidCreate.copy(head, at('uuidCreate'));
  randomBytes(16).copy(head, at('uuidModify'));
  base.uuidCreate.copy(head, at('uuidLinkage'));
  (spec.parentModify ?? base.uuidModify).copy(head, at('uuidParentModify'));
  const data: Buffer[] = [];
  for (let index = 0; index < base.cBlocks; index++) {
    const block = spec.blocks.get(index);
    let entry = VDI_IMAGE_BLOCK_FREE;
    if (block === 'zero') entry = 0xfffffffe;
    else if (block !== undefined) {
      entry = data.length;
      data.push(block);
    }
    head.writeUInt32LE(entry, base.offBlocks + index * 4);
  }
  head.writeUInt32LE(data.length, at('cBlocksAllocated'));
  await writeFile(childPath, Buffer.concat([head, ...data]));
  return uuidCreate;
}
