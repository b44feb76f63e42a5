// Builds OVF packages the way other tools do: qemu-img makes the streamOptimized VMDK, GNU tar
// the archive (ustar, descriptor first), sha256sum/sha1sum-style digests the manifest; the
// descriptor is written by hand with the namespace prefix a test chooses.

import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const MiB = 1024 * 1024;
export const OVF_NS = 'http://schemas.dmtf.org/ovf/envelope/1';

export interface KitDisk {
  readonly id: string;
  readonly href: string;
  readonly capacity: number;
  readonly chunkSize?: number;
  readonly compression?: string;
}

/** An OVF 1.0 descriptor whose OVF elements and attributes carry `prefix` ('' for the default namespace). */
export function ovfXml(disks: readonly KitDisk[], prefix = 'ovf'): string {
  const p = prefix === '' ? '' : `${prefix}:`;
  const a = prefix === '' ? 'ovf:' : `${prefix}:`;
  const xmlns = prefix === '' ? `xmlns="${OVF_NS}" xmlns:ovf="${OVF_NS}"` : `xmlns:${prefix}="${OVF_NS}"`;
  const files = disks
    .map((disk) => {
      const extra = `${disk.chunkSize === undefined ? '' : ` ${a}chunkSize="${disk.chunkSize}"`}${
        disk.compression === undefined ? '' : ` ${a}compression="${disk.compression}"`
      }`;
      return `<${p}File ${a}id="f-${disk.id}" ${a}href="${disk.href}"${extra}/>`;
    })
    .join('\n    ');
  const diskNodes = disks
    .map((disk) => `<${p}Disk ${a}diskId="${disk.id}" ${a}fileRef="f-${disk.id}" ${a}capacity="${disk.capacity}"/>`)
    .join('\n    ');
  return `<?xml version="1.0" encoding="UTF-8"?>
<${p}Envelope ${xmlns} ${a}version="1.0">
  <${p}References>
    ${files}
  </${p}References>
  <${p}DiskSection><${p}Info>Virtual disks</${p}Info>
    ${diskNodes}
  </${p}DiskSection>
  <${p}VirtualSystem ${a}id="appliance"><${p}Info>A virtual machine</${p}Info></${p}VirtualSystem>
</${p}Envelope>
`;
}

export async function streamVmdk(dir: string, raw: string, name: string): Promise<string> {
  const path = join(dir, name);
  await execa('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, path]);
  return path;
}

/** `ALG(name)= hex` for each file of `names` in `dir`. */
export async function manifest(dir: string, names: readonly string[], algorithm: 'sha1' | 'sha256' = 'sha256'): Promise<string> {
  let text = '';
  for (const name of names) {
    const digest = createHash(algorithm)
      .update(await readFile(join(dir, name)))
      .digest('hex');
    text += `${algorithm.toUpperCase()}(${name})= ${digest}\n`;
  }
  return text;
}

/** GNU tar in ustar format, members in the order given (the .ovf first). */
export async function tarPackage(dir: string, out: string, members: readonly string[]): Promise<string> {
  const path = join(dir, out);
  await execa('tar', ['--format=ustar', '-cf', path, '-C', dir, ...members]);
  return path;
}

export async function writeText(dir: string, name: string, text: string): Promise<void> {
  await writeFile(join(dir, name), text);
}
