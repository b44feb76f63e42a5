// VMDK detection by content: a KDMV (or COWD) extent header, or descriptor text; a file with no
// magic (a flat extent) is a VMDK only if a descriptor beside it names it.

import type { ImageFormat, ProbeInput } from '../image-format.js';
import { COWD_MAGICNUMBER, MAX_DESCRIPTOR_FILE_BYTES, SPARSE_MAGICNUMBER, SPARSE_MAGICNUMBER_INCOMPLETE } from './constants.js';
import { looksLikeDescriptor } from './descriptor.js';
import { findDescriptorNaming } from './descriptor-lookup.js';
import { extentMagicOf } from './sparse-header.js';

export function detectVmdk(probe: ProbeInput): boolean {
  if (probe.isDirectory) return false;
  const magic = extentMagicOf(probe.head);
  if (magic === SPARSE_MAGICNUMBER || magic === SPARSE_MAGICNUMBER_INCOMPLETE || magic === COWD_MAGICNUMBER) return true;
  if (probe.sizeBytes <= MAX_DESCRIPTOR_FILE_BYTES && looksLikeDescriptor(probe.head)) return true;
  return /\.vmdk$/i.test(probe.path) && findDescriptorNaming(probe.path) !== undefined;
}

export const vmdkFormat: ImageFormat = {
  name: 'vmdk',
  detect: detectVmdk,
  open: async (path, options) => (await import('./open-vmdk.js')).openVmdk(path, options),
};
