// The magics of every disk-image format sbm may meet, as one declarative table: where the bytes
// sit (an offset from the start, or a negative offset from the end of the file) and what they
// are. Sources: ../shared/reference/*-format.md, qemu's block drivers' probe functions, libmodi
// (sparseimage), huven/asif-format (ASIF). Formats whose tell-tale is more than a fixed run of
// bytes (OVA, folders) live beside this table (ova-signature.ts, detect-directory.ts).
//
//   offset 0          qcow/qcow2, QED, VHDX, VHD (dynamic copy), Parallels, LUKS, Bochs, cloop,
//                     Apple sparseimage, ASIF, encrypted .dmg (v2), VMware seSparse
//   offset 0x40       VDI
//   EOF - 512         VHD footer (fixed VHDs have only this), UDIF `koly` trailer
//   EOF - 511         VHD footer of old Virtual PC fixed disks (one byte short)
//   EOF - 8           encrypted Apple image v1 (`cdsaencr`)

import { type BinaryLayout, defineLayout } from '../../lib/binary-layout.js';

/** What detection concluded: `name` is the reader's registry name, `label` what users read. */
export interface Detection {
  readonly name: string;
  readonly label: string;
}

export interface Signature extends Detection {
  /** Byte offset of the magic: from the start when >= 0, from the end of the file when < 0. */
  readonly at: number;
  /** The magic as a one-field layout (`bytes` with `equals`), matched with `layout.matches`. */
  readonly layout: BinaryLayout<readonly [{ name: 'magic'; offset: 0; type: 'bytes'; size: number; equals: string }]>;
  /** Refines name and label from the file's first bytes (e.g. the qcow version). */
  readonly refine?: (head: Buffer) => Detection;
}

/** One table row: `magic` is latin1 text (escapes for the binary bytes) found at `at`. */
function signature(name: string, label: string, at: number, magic: string, refine?: (head: Buffer) => Detection): Signature {
  const layout = defineLayout(`${label} signature`, magic.length, 'be', [
    { name: 'magic', offset: 0, type: 'bytes', size: magic.length, equals: magic },
  ] as const);
  return { name, label, at, layout, ...(refine === undefined ? {} : { refine }) };
}

/** qcow and qcow2 share the magic; the version that follows tells them apart. */
const QCOW_HEADER_START = defineLayout('qcow header start', 8, 'be', [
  { name: 'magic', offset: 0, type: 'bytes', size: 4, equals: 'QFI\xfb' },
  { name: 'version', offset: 4, type: 'u32' },
] as const);

/** LUKS1 and LUKS2 share the magic; a big-endian u16 version follows. */
const LUKS_HEADER_START = defineLayout('LUKS header start', 8, 'be', [
  { name: 'magic', offset: 0, type: 'bytes', size: 6, equals: 'LUKS\xba\xbe' },
  { name: 'version', offset: 6, type: 'u16' },
] as const);

function refineQcow(head: Buffer): Detection {
  if (!QCOW_HEADER_START.matches(head)) return { name: 'qcow2', label: 'qcow2' };
  const { version } = QCOW_HEADER_START.decode(head);
  if (version === 1) return { name: 'qcow', label: 'qcow (version 1)' };
  if (version === 2) return { name: 'qcow2', label: 'qcow2 (version 2, compat=0.10)' };
  if (version === 3) return { name: 'qcow2', label: 'qcow2 (version 3, compat=1.1)' };
  return { name: 'qcow2', label: `qcow2 (unknown version ${version})` };
}

function refineLuks(head: Buffer): Detection {
  if (!LUKS_HEADER_START.matches(head)) return { name: 'luks', label: 'LUKS' };
  return { name: 'luks', label: `LUKS${LUKS_HEADER_START.decode(head).version}` };
}

/**
 * Most specific first: every magic at the start of the file before any trailer, so an image
 * whose last sector happens to hold another format's footer is still named by its header.
 */
export const SIGNATURES: readonly Signature[] = [
  signature('qcow2', 'qcow2', 0, 'QFI\xfb', refineQcow),
  signature('qed', 'QED', 0, 'QED\0'),
  signature('vhdx', 'VHDX', 0, 'vhdxfile'),
  // VDI: u32 little-endian 0xbeda107f after the 64-byte banner (the banner text is never checked).
  signature('vdi', 'VDI', 0x40, '\x7f\x10\xda\xbe'),
  signature('vhd', 'VHD', 0, 'conectix'),
  signature('parallels', 'Parallels', 0, 'WithoutFreeSpace'),
  signature('parallels', 'Parallels', 0, 'WithouFreSpacExt'),
  signature('luks', 'LUKS', 0, 'LUKS\xba\xbe', refineLuks),
  signature('bochs', 'Bochs', 0, 'Bochs Virtual HD Image\0'),
  signature('cloop', 'cloop', 0, '#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0'),
  signature('sparseimage', 'Apple sparse image (.sparseimage)', 0, 'sprs'),
  signature('asif', 'ASIF (Apple sparse image format)', 0, 'shdw'),
  signature('encrypted-dmg', 'encrypted Apple disk image (encrcdsa)', 0, 'encrcdsa'),
  // ESXi seSparse constant header: u64 little-endian 0x00000000cafebabe.
  signature('vmdk-sesparse', 'VMware seSparse', 0, '\xbe\xba\xfe\xca\0\0\0\0'),
  signature('vhd', 'VHD', -512, 'conectix'),
  signature('vhd', 'VHD (Virtual PC 511-byte footer)', -511, 'conectix'),
  signature('dmg', 'UDIF (.dmg)', -512, 'koly'),
  signature('encrypted-dmg', 'encrypted Apple disk image (cdsaencr)', -8, 'cdsaencr'),
];

/** Every name detection may return, with a label for refusals of `--format NAME`. */
export const KNOWN_FORMAT_LABELS: ReadonlyMap<string, string> = (() => {
  const labels = new Map<string, string>();
  for (const signature of SIGNATURES) if (!labels.has(signature.name)) labels.set(signature.name, signature.label);
  labels.set('qcow', 'qcow (version 1)');
  labels.set('encrypted-dmg', 'encrypted Apple disk image');
  labels.set('ova', 'OVA');
  labels.set('ovf', 'OVF folder');
  labels.set('parallels-hdd', 'Parallels (.hdd folder)');
  labels.set('parallels-pvm', 'Parallels virtual machine (.pvm folder)');
  return labels;
})();
