// What a layered image (a VMDK delta chain, a qcow2 overlay on its backing file, a differencing
// VDI) tells `sbm sync` about its layers, so that a sync can read only what newer layers hold.
// formats/ implements it; lib/ reads it without knowing any format.
//
//   top layer      | own | ... absent: the layer below answers ... | own |
//   ...
//   base layer     | own ......................................... (zeros past its end)

import { type BlockDevice, type Extent, pushExtent } from './block-device.js';

export interface ImageLayer {
  /** Every file the layer reads, the one that names it first (descriptor, then its extents). */
  readonly files: readonly string[];
  /** The format's own identifiers (VMDK CID/parentCID, VDI UUIDs, ...), as text. */
  readonly ids: Readonly<Record<string, string>>;
  /** Set when the layer's own header marks it open for writing (Parallels' in-use mark): which file, whose. */
  readonly openForWriting?: { readonly path: string; readonly hypervisor: string };
  /**
   * Runs inside [offset, offset+length) that this layer answers itself (data, or zero over its
   * parents), in order; what it leaves to the layers below is not listed. May over-report, never
   * under-report.
   */
  allocated(offset: number, length: number): Promise<Extent[]>;
}

export interface LayeredDevice extends BlockDevice {
  /** The chain, top (the file opened) first, base last. */
  layers(): readonly ImageLayer[];
}

export function isLayered(device: BlockDevice): device is LayeredDevice {
  return typeof (device as Partial<LayeredDevice>).layers === 'function';
}

/** A layer that answers every byte: a format without layer information (raw, a bundle). */
export function wholeLayer(files: readonly string[], sizeBytes: number, ids: Record<string, string> = {}): ImageLayer {
  return {
    files,
    ids,
    allocated: async (offset, length) => {
      const end = Math.min(offset + length, sizeBytes);
      return end > offset ? [{ offset, length: end - offset, kind: 'data' }] : [];
    },
  };
}

/** How one link of a chain reads a run: from its own file or as zeros (`own`), or from its parent. */
export type LinkRun = 'own-data' | 'own-zero' | 'parent';

/**
 * What one link of a chain answers itself inside [offset, offset+length), from a walk over its
 * runs: its data, and zeros it sets over its parents; runs it leaves to its parent are left out.
 */
export async function ownRuns(
  sizeBytes: number,
  offset: number,
  length: number,
  walk: (offset: number, length: number, visit: (position: number, length: number, run: LinkRun) => Promise<void>) => Promise<void>,
): Promise<Extent[]> {
  const own: Extent[] = [];
  const end = Math.min(offset + length, sizeBytes);
  if (end <= offset) return own;
  await walk(offset, end - offset, async (position, runLength, run) => {
    if (run !== 'parent') pushExtent(own, { offset: position, length: runLength, kind: run === 'own-data' ? 'data' : 'zero' });
  });
  return own;
}

/** The layers of a parent of another format: its own, when it has them; else one layer answering every byte. */
export function layersOfParent(parent: BlockDevice): readonly ImageLayer[] {
  if (isLayered(parent)) return parent.layers();
  const path = (parent as { readonly path?: unknown }).path;
  return [wholeLayer(typeof path === 'string' ? [path] : [], parent.sizeBytes)];
}
