// Opens Parallels disks, whichever of the three forms the user names:
//
//   disk.hds   one expanding image, read alone (no descriptor, no parents)
//   disk.hdd/  DiskDescriptor.xml + its layers: storages end to end, the current snapshot's chain
//   vm.pvm/    config.pvs lists the machine's disks (Hardware/Hdd); --disk N picks one, the boot
//              disk (hdd0) by default
//
// Everything is validated before the first byte is served; a missing image or a file named
// outside its folder is refused with one line.

import { join } from 'node:path';
import { SbmError } from '../../lib/errors.js';
import type { SbmWarning, WarningSink } from '../../lib/warnings.js';
import type { OpenImageOptions } from '../image-format.js';
import { DESCRIPTOR_NAME, MAX_DESCRIPTOR_BYTES, SECTOR_SIZE } from './constants.js';
import { type DiskDescriptor, parseDiskDescriptor } from './disk-descriptor.js';
import { ExpandingLayer, type ParallelsLayer, PlainLayer } from './expanding-layer.js';
import { resolveInside } from './inside-path.js';
import { ParallelsDisk, type StorageLayers } from './parallels-disk.js';
import { readSmallFile } from './small-file.js';
import { listVmDisks, pickVmDisk } from './vm-config.js';

function sinkOf(options: OpenImageOptions): WarningSink {
  return (warning: SbmWarning) => options.onWarning?.(warning);
}

/** A single expanding image, read on its own. */
export async function openParallelsImage(path: string, options: OpenImageOptions = {}): Promise<ParallelsDisk> {
  const layer = await ExpandingLayer.open(path, sinkOf(options));
  const storage: StorageLayers = { startBytes: 0, endBytes: layer.sizeBytes, blockBytes: layer.clusterBytes, layers: [layer] };
  return new ParallelsDisk({ path, sizeBytes: layer.sizeBytes, storages: [storage], chain: [], facts: {} });
}

export async function readDescriptor(folder: string): Promise<DiskDescriptor> {
  const path = join(folder, DESCRIPTOR_NAME);
  return parseDiskDescriptor(await readSmallFile(path, MAX_DESCRIPTOR_BYTES, 'Parallels disk descriptor'), path);
}

/** A disk folder (NAME.hdd/): its descriptor, then every layer of the current chain in every storage. */
export async function openParallelsFolder(folder: string, options: OpenImageOptions = {}): Promise<ParallelsDisk> {
  const descriptor = await readDescriptor(folder);
  const descriptorPath = join(folder, DESCRIPTOR_NAME);
  const warn = sinkOf(options);
  const storages: StorageLayers[] = [];
  try {
    for (const storage of descriptor.storages) {
      const layers: ParallelsLayer[] = [];
      storages.push({
        startBytes: storage.startSectors * SECTOR_SIZE,
        endBytes: storage.endSectors * SECTOR_SIZE,
        blockBytes: storage.blockSectors * SECTOR_SIZE,
        layers,
      });
      const lengthBytes = (storage.endSectors - storage.startSectors) * SECTOR_SIZE;
      for (const guid of descriptor.chain) {
        const image = storage.images.get(guid);
        if (image === undefined) throw new SbmError('SBM_INTERNAL', `descriptor check let image {${guid}} go missing`);
        const file = await resolveInside(image.file, {
          folder,
          namedBy: descriptorPath,
          what: 'image',
          allowOutside: options.allowOutside === true,
        });
        const layer = image.type === 'Plain' ? await PlainLayer.open(file, lengthBytes) : await ExpandingLayer.open(file, warn);
        layers.push(layer);
        checkLayer(layer, storage.blockSectors, lengthBytes, warn);
      }
    }
  } catch (error) {
    for (const storage of storages) for (const layer of storage.layers) await layer.file.close();
    throw error;
  }
  return new ParallelsDisk({
    path: folder,
    sizeBytes: descriptor.diskSectors * SECTOR_SIZE,
    storages,
    chain: descriptor.chain,
    facts: {
      descriptor: descriptorPath,
      ...(descriptor.name === undefined ? {} : { diskName: descriptor.name }),
      ...(descriptor.changeState === undefined ? {} : { changeState: descriptor.changeState }),
      split: descriptor.storages.length > 1,
    },
  });
}

function checkLayer(layer: ParallelsLayer, blockSectors: number, lengthBytes: number, warn: WarningSink): void {
  if (!(layer instanceof ExpandingLayer)) return;
  if (layer.sizeBytes !== lengthBytes) {
    warn({
      code: 'SBM_PARALLELS_SIZE_MISMATCH',
      message:
        `${layer.path}: image holds ${layer.sizeBytes} bytes, its storage in DiskDescriptor.xml ${lengthBytes}; ` +
        'past the image reads zeros',
      data: { path: layer.path },
    });
  }
  if (layer.values.tracks !== blockSectors) {
    warn({
      code: 'SBM_PARALLELS_SIZE_MISMATCH',
      message:
        `${layer.path}: cluster of ${layer.values.tracks} sectors, DiskDescriptor.xml says Blocksize ${blockSectors}; ` +
        "the image's own is used",
      data: { path: layer.path },
    });
  }
}

/** A virtual machine folder (NAME.pvm/): the disk `options.disk` names, or the boot disk. */
export async function openParallelsVm(folder: string, options: OpenImageOptions = {}): Promise<ParallelsDisk> {
  const disks = await listVmDisks(folder, options.allowOutside === true);
  const chosen = pickVmDisk(folder, disks, options.disk);
  const disk = await openParallelsFolder(chosen.folder, options);
  const listing = [];
  for (const entry of disks) {
    const sizeBytes = await readDescriptor(entry.folder).then(
      (descriptor) => descriptor.diskSectors * SECTOR_SIZE,
      () => undefined, // a disk that cannot be described is listed without a size; opening it says why
    );
    listing.push({ index: entry.index, name: entry.systemName, ...(sizeBytes === undefined ? {} : { sizeBytes }) });
  }
  return new ParallelsDisk({ ...disk.parts, path: folder, facts: { disk: chosen.index, disks: listing, ...disk.parts.facts } });
}
