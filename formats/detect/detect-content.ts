// Names a file's format from its first and last bytes: the signature table first (magics at
// the start), then the OVA tar walk, then trailers at the end of the file. Undefined means no
// known format: the caller falls back to raw, as qemu-img does. A file too short to hold a
// signature matches nothing, so it is raw.

import type { ProbeInput } from '../image-format.js';
import { isOva } from './ova-signature.js';
import { type Detection, SIGNATURES, type Signature } from './signatures.js';

/** Bytes at the end of a file that detection reads (the VHD footer and `koly` trailer are 512). */
export const PROBE_TAIL_BYTES = 1024;

function matches(signature: Signature, probe: ProbeInput): boolean {
  const { at, layout } = signature;
  if (at >= 0) return layout.matches(probe.head, at);
  const tail = probe.tail ?? Buffer.alloc(0);
  if (probe.sizeBytes < -at || tail.length < -at) return false;
  return layout.matches(tail, tail.length + at);
}

function detection(signature: Signature, probe: ProbeInput): Detection {
  return signature.refine?.(probe.head) ?? { name: signature.name, label: signature.label };
}

/**
 * An OVF descriptor named directly: XML text whose first element is an Envelope in an OVF
 * namespace (any prefix). Read as the package it describes, never as raw bytes.
 */
function isOvfDescriptor(head: Buffer): boolean {
  const text = head
    .subarray(0, 4096)
    .toString('utf8')
    .replace(/^\uFEFF/, '');
  if (!/^\s*</.test(text)) return false;
  const root = /<(?![?!])(?:[\w.-]+:)?Envelope\b[^>]*>/.exec(text);
  return root !== null && /schemas\.dmtf\.org\/ovf\/envelope\/|vmware\.com\/schema\/ovf/.test(root[0]);
}

export function detectContent(probe: ProbeInput): Detection | undefined {
  if (probe.isDirectory) return undefined;
  for (const signature of SIGNATURES) {
    if (signature.at >= 0 && matches(signature, probe)) return detection(signature, probe);
  }
  if (isOva(probe.head)) return { name: 'ova', label: 'OVA' };
  if (isOvfDescriptor(probe.head)) return { name: 'ovf', label: 'OVF descriptor' };
  for (const signature of SIGNATURES) {
    if (signature.at < 0 && matches(signature, probe)) return detection(signature, probe);
  }
  return undefined;
}
