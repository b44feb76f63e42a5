// Opens any VMDK file set from whichever file the user names: a text descriptor, a monolithic or
// stream file (KDMV with an embedded descriptor), or one extent of a multi-extent disk (resolved
// to the descriptor beside it). Follows parentFileNameHint down the chain.

import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import type { SbmWarning, WarningSink } from '../../lib/warnings.js';
import type { OpenImageOptions } from '../image-format.js';
import {
  COWD_MAGICNUMBER,
  DEVICE_CREATE_TYPES,
  DEVICE_EXTENT_TYPES,
  MAX_DESCRIPTOR_FILE_BYTES,
  NO_PARENT_CID,
  SECTOR_SIZE,
  SPARSE_MAGICNUMBER,
  SPARSE_MAGICNUMBER_INCOMPLETE,
} from './constants.js';
import { type Descriptor, type DescriptorExtent, decodeDescriptorText, looksLikeDescriptor, parseDescriptor } from './descriptor.js';
import { findDescriptorNaming } from './descriptor-lookup.js';
import { resolveNamedFile } from './extent-path.js';
import { FlatExtent, ZeroExtent } from './flat-extent.js';
import { SparseExtent } from './sparse-extent.js';
import type { ExtentHandle, VmdkExtent } from './vmdk-extent.js';
import { type PlacedExtent, VmdkImage } from './vmdk-image.js';
import { extentMagicOf } from './sparse-header.js';

const MAX_CHAIN_DEPTH = 64;

interface OpenState {
  readonly options: OpenImageOptions;
  readonly warn: WarningSink;
  readonly warnings: SbmWarning[];
  readonly seen: Set<string>;
  /** A VMDK read from inside a package (an OVA): it has no folder to find parents in. */
  readonly embedded?: boolean;
}

/** Opens the VMDK at `path` (any file of the set) read-only. */
export async function openVmdk(path: string, options: OpenImageOptions = {}): Promise<VmdkImage> {
  const warnings: SbmWarning[] = [];
  const warn: WarningSink = (warning) => {
    warnings.push(warning);
    options.onWarning?.(warning);
  };
  return openLink(path, { options, warn, warnings, seen: new Set() });
}

async function openHandle(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, 'cannot open VMDK file', path);
  }
}

async function readHead(handle: FileHandle, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  const { bytesRead } = await handle.read(out, 0, length, 0);
  return out.subarray(0, bytesRead);
}

async function openLink(path: string, state: OpenState): Promise<VmdkImage> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (error) {
    throw fromSystemError(error, 'cannot open VMDK', path);
  }
  if (state.seen.has(real)) throw new SbmError('SBM_CORRUPT', `${path}: the parent chain loops back to this file`, { path });
  if (state.seen.size >= MAX_CHAIN_DEPTH)
    throw new SbmError('SBM_UNSUPPORTED', `${path}: parent chain deeper than ${MAX_CHAIN_DEPTH} links`, { path });
  const info = await stat(real);
  if (!info.isFile()) throw new SbmError('SBM_UNSUPPORTED', `${path} is not a regular file`, { path });
  const handle = await openHandle(real);
  let handed = false;
  try {
    const head = await readHead(handle, Math.min(info.size, MAX_DESCRIPTOR_FILE_BYTES));
    const magic = extentMagicOf(head);
    if (magic === SPARSE_MAGICNUMBER || magic === SPARSE_MAGICNUMBER_INCOMPLETE) {
      // One extent of a set (a text descriptor beside it lists it): open the whole disk.
      const owner = findDescriptorNaming(real);
      if (owner !== undefined) return await openLink(owner, state);
      handed = true;
      return await openSparseFile(real, handle, state);
    }
    if (looksLikeDescriptor(head) && info.size <= MAX_DESCRIPTOR_FILE_BYTES) {
      state.seen.add(real);
      return await openFromDescriptor(real, parseDescriptor(decodeDescriptorText(head, real), real), state);
    }
    const descriptor = findDescriptorNaming(real);
    if (descriptor !== undefined) return await openLink(descriptor, state);
    if (magic === COWD_MAGICNUMBER) {
      throw new SbmError('SBM_UNSUPPORTED', `${path} is a vmfsSparse extent and no descriptor beside it names it; open its descriptor`, {
        path,
      });
    }
    throw new SbmError(
      'SBM_UNKNOWN_FORMAT',
      `${path} is neither a VMDK descriptor nor a sparse extent, and no descriptor beside it names it`,
      { path },
    );
  } finally {
    if (!handed) await handle.close();
  }
}

/**
 * A self-contained sparse VMDK (streamOptimized or monolithicSparse, descriptor embedded) read
 * through `handle`, e.g. a window of an OVA's tar; `path` is the file the handle reads from.
 * Takes ownership of `handle`. A delta (parentFileNameHint) is refused: a package has no parents.
 */
export async function openEmbeddedVmdk(handle: ExtentHandle, path: string, options: OpenImageOptions = {}): Promise<VmdkImage> {
  const warnings: SbmWarning[] = [];
  const warn: WarningSink = (warning) => {
    warnings.push(warning);
    options.onWarning?.(warning);
  };
  return openSparseFile(path, handle, { options, warn, warnings, seen: new Set(), embedded: true });
}

/** A KDMV file named directly: self-contained (embedded descriptor) or one extent of a set. */
async function openSparseFile(real: string, handle: ExtentHandle, state: OpenState): Promise<VmdkImage> {
  let extent: SparseExtent;
  try {
    extent = await SparseExtent.open(handle, real, state.warn);
  } catch (error) {
    await handle.close();
    throw error;
  }
  let descriptor: Descriptor | undefined;
  try {
    const area = await extent.embeddedDescriptor();
    if (area.length > 0 && looksLikeDescriptor(area)) descriptor = parseDescriptor(decodeDescriptorText(area, real), real);
  } catch (error) {
    await extent.close();
    throw error;
  }
  if (descriptor === undefined) {
    await extent.close();
    throw new SbmError(
      'SBM_UNSUPPORTED',
      `${real} is one extent of a multi-extent VMDK (no embedded descriptor) and no descriptor beside it names it; open the descriptor`,
      {
        path: real,
      },
    );
  }
  if (extent.sizeBytes === 0 && descriptor.extents.length > 0) {
    // A KDMV with capacity 0 is only a carrier for a descriptor (as qemu reads it).
    await extent.close();
    if (state.embedded === true) throw new SbmError('SBM_UNSUPPORTED', `${real}: a packaged VMDK names other extent files`, { path: real });
    state.seen.add(real);
    return openFromDescriptor(real, descriptor, state);
  }
  // Whatever extent names the embedded descriptor lists, the extent is this file (renamed files work).
  state.seen.add(real);
  const declared = descriptor.extents.reduce((sum, item) => sum + item.sectors * SECTOR_SIZE, 0);
  if (descriptor.extents.length > 0 && declared !== extent.sizeBytes) {
    state.warn({
      code: 'SBM_VMDK_SIZE_MISMATCH',
      message: `${real}: descriptor says ${declared} bytes, header capacity is ${extent.sizeBytes}; using the header`,
      data: { path: real },
    });
  }
  try {
    return await withParent(real, descriptor, [{ start: 0, extent }], state);
  } catch (error) {
    await extent.close();
    throw error;
  }
}

function refuseDevice(path: string, createType: string): void {
  const key = createType.toLowerCase();
  if ((DEVICE_CREATE_TYPES as readonly string[]).includes(key)) {
    throw new SbmError(
      'SBM_UNSUPPORTED',
      `${path}: createType "${createType}" is device-backed (data lives on a device, not in files); not supported`,
      {
        path,
        createType,
      },
    );
  }
}

async function openExtent(descriptorPath: string, item: DescriptorExtent, state: OpenState): Promise<VmdkExtent> {
  const sizeBytes = item.sectors * SECTOR_SIZE;
  if ((DEVICE_EXTENT_TYPES as readonly string[]).includes(item.type)) {
    throw new SbmError('SBM_UNSUPPORTED', `${descriptorPath}: ${item.type} extents are device-backed (raw device mapping); not supported`, {
      path: descriptorPath,
    });
  }
  if (item.type === 'ZERO') return new ZeroExtent(sizeBytes);
  if (item.type === 'SESPARSE') {
    throw new SbmError('SBM_UNSUPPORTED', `${descriptorPath}: unsupported subformat (${item.type} extent "${item.fileName ?? ''}")`, {
      path: descriptorPath,
    });
  }
  if (item.type !== 'FLAT' && item.type !== 'VMFS' && item.type !== 'SPARSE' && item.type !== 'VMFSSPARSE') {
    throw new SbmError('SBM_UNSUPPORTED', `${descriptorPath}: unknown extent type "${item.type.slice(0, 20)}"`, { path: descriptorPath });
  }
  if (item.fileName === undefined || item.fileName === '') {
    throw new SbmError('SBM_CORRUPT', `${descriptorPath}: ${item.type} extent without a file name`, { path: descriptorPath });
  }
  const file = await resolveNamedFile(descriptorPath, item.fileName, 'extent', state.options.allowOutside === true);
  const handle = await openHandle(file);
  if (item.type === 'SPARSE' || item.type === 'VMFSSPARSE') {
    let extent: SparseExtent;
    try {
      const head = await readHead(handle, 4);
      const magic = extentMagicOf(head);
      if (item.type === 'VMFSSPARSE' && magic !== COWD_MAGICNUMBER) {
        throw new SbmError('SBM_UNSUPPORTED', `${file}: unsupported subformat (VMFSSPARSE extent without a COWD header)`, { path: file });
      }
      extent =
        magic === COWD_MAGICNUMBER
          ? await SparseExtent.openCowd(handle, file, state.warn)
          : await SparseExtent.open(handle, file, state.warn);
    } catch (error) {
      await handle.close();
      throw error;
    }
    if (extent.sizeBytes !== sizeBytes) {
      state.warn({
        code: 'SBM_VMDK_SIZE_MISMATCH',
        message: `${file}: descriptor says ${sizeBytes} bytes, header capacity is ${extent.sizeBytes}; using the header`,
        data: { path: file },
      });
    }
    return extent;
  }
  try {
    return await FlatExtent.open(handle, file, sizeBytes, item.type === 'FLAT' ? item.offsetSectors : 0, item.type);
  } catch (error) {
    await handle.close();
    throw error;
  }
}

async function openFromDescriptor(path: string, descriptor: Descriptor, state: OpenState): Promise<VmdkImage> {
  refuseDevice(path, descriptor.createType);
  if (descriptor.extents.length === 0) throw new SbmError('SBM_CORRUPT', `${path}: descriptor lists no extents`, { path });
  const placed: PlacedExtent[] = [];
  let start = 0;
  try {
    for (const item of descriptor.extents) {
      const extent = await openExtent(path, item, state);
      placed.push({ start, extent });
      start += extent.sizeBytes;
    }
    if (!Number.isSafeInteger(start)) throw new SbmError('SBM_CORRUPT', `${path}: extents add up to an absurd size`, { path });
    return await withParent(path, descriptor, placed, state);
  } catch (error) {
    for (const { extent } of placed) await extent.close();
    throw error;
  }
}

async function withParent(path: string, descriptor: Descriptor, placed: PlacedExtent[], state: OpenState): Promise<VmdkImage> {
  const hint = descriptor.parentFileNameHint;
  if (hint !== undefined && state.embedded === true) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: the VMDK is a delta of "${hint}"; a packaged disk must be self-contained`, { path });
  }
  if (hint === undefined) {
    if (descriptor.parentCid !== NO_PARENT_CID) {
      throw new SbmError('SBM_CORRUPT', `${path}: delta link (parentCID set) without parentFileNameHint`, { path });
    }
    return new VmdkImage(path, descriptor, placed, undefined, state.warnings);
  }
  const parentPath = await resolveNamedFile(path, hint, 'parent', state.options.allowOutside === true);
  const parent = await openLink(parentPath, state);
  if (parent.descriptor.cid !== descriptor.parentCid) {
    const hex = (value: number | undefined): string => (value === undefined ? 'none' : value.toString(16).padStart(8, '0'));
    state.warn({
      code: 'SBM_VMDK_CID_MISMATCH',
      message:
        `${path}: parentCID ${hex(descriptor.parentCid)} does not match the CID ${hex(parent.descriptor.cid)} of ${parentPath} ` +
        '(the parent changed after this snapshot)',
      data: { path, parentPath },
    });
  }
  return new VmdkImage(path, descriptor, placed, parent, state.warnings);
}
