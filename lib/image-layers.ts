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

/** One link of a format's own chain, as chainLayers walks it. */
export interface ChainLink {
  readonly files: readonly string[];
  readonly ids: Readonly<Record<string, string>>;
  /** The link below, or undefined at the base. */
  readonly parent: BlockDevice | undefined;
  /**
   * Walks [offset, offset+length) in order, naming what each run reads: `here` (the link's own
   * data), `parent` (left to the link below), anything else (zeros the link sets itself).
   */
  walk(
    offset: number,
    length: number,
    visit: (position: number, length: number, run: { readonly kind: string }) => Promise<void>,
  ): Promise<void>;
  assertOpen(): void;
}

/**
 * The layers of a chain, top first: each link `linkOf` knows answers its `here` runs as data and
 * its other non-`parent` runs as zeros; a parent of another format brings its own layers (or one
 * layer answering every byte).
 */
export function chainLayers(top: BlockDevice, linkOf: (device: BlockDevice) => ChainLink | undefined): ImageLayer[] {
  const list: ImageLayer[] = [];
  for (let device: BlockDevice | undefined = top; device !== undefined; ) {
    const link = linkOf(device);
    if (link === undefined) {
      list.push(...layersOfParent(device));
      break;
    }
    const sizeBytes = device.sizeBytes;
    list.push({ files: link.files, ids: link.ids, allocated: (offset, length) => ownRuns(sizeBytes, link, offset, length) });
    device = link.parent;
  }
  return list;
}

/** What one link answers itself inside [offset, offset+length): its data, and zeros it sets over its parents. */
async function ownRuns(sizeBytes: number, link: ChainLink, offset: number, length: number): Promise<Extent[]> {
  link.assertOpen();
  const own: Extent[] = [];
  const end = Math.min(offset + length, sizeBytes);
  if (end <= offset) return own;
  await link.walk(offset, end - offset, async (position, runLength, run) => {
    if (run.kind !== 'parent') pushExtent(own, { offset: position, length: runLength, kind: run.kind === 'here' ? 'data' : 'zero' });
  });
  return own;
}

/** The layers of a parent of another format: its own, when it has them; else one layer answering every byte. */
function layersOfParent(parent: BlockDevice): readonly ImageLayer[] {
  if (isLayered(parent)) return parent.layers();
  const path = (parent as { readonly path?: unknown }).path;
  return [wholeLayer(typeof path === 'string' ? [path] : [], parent.sizeBytes)];
}
